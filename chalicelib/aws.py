"""boto3 clients shared by the handlers of one Lambda container.

botocore reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``) itself, so the same code talks to AWS,
LocalStack or moto's server; only S3 needs path-style addressing off AWS,
since a bucket cannot be a sub-domain of 127.0.0.1.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


@lru_cache(maxsize=None)
def s3_client() -> Any:
    off_aws = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    addressing = "path" if off_aws else "auto"
    return boto3.client("s3", region_name=_region(),
                        config=Config(s3={"addressing_style": addressing}, signature_version="s3v4"))


@lru_cache(maxsize=None)
def sqs_client() -> Any:
    return boto3.client("sqs", region_name=_region())


@lru_cache(maxsize=None)
def queue_url(queue_name: str) -> str:
    return sqs_client().get_queue_url(QueueName=queue_name)["QueueUrl"]


def reset_clients() -> None:
    """Forget cached clients, PynamoDB's too (tests switch emulators between cases)."""
    from chalicelib.storage.models import ALL_MODELS

    s3_client.cache_clear()
    sqs_client.cache_clear()
    queue_url.cache_clear()
    for model in ALL_MODELS:
        model._connection = None
