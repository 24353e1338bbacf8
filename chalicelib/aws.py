"""boto3 clients, made by the composition root and handed to whoever needs them.

botocore reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``) itself, so the same
code talks to AWS, LocalStack or moto's server; only S3 needs path-style addressing off AWS,
since a bucket cannot be a sub-domain of 127.0.0.1. Nothing is cached at module
level: a Lambda container keeps its clients in its ``Dependencies``, and a test
that switches emulators simply builds new ones.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import boto3
from botocore.config import Config

from chalicelib.settings import region


def s3_client() -> Any:
    """A new S3 client for the environment's endpoint (path-style off AWS)."""
    off_aws = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    addressing = "path" if off_aws else "auto"
    return boto3.client("s3", region_name=region(),
                        config=Config(s3={"addressing_style": addressing}, signature_version="s3v4"))


def sqs_client() -> Any:
    """A new SQS client for the environment's endpoint."""
    return boto3.client("sqs", region_name=region())


def queue_url(queue_name: str, client: Optional[Any] = None) -> str:
    """The URL of a queue by name (one GetQueueUrl call; ``AwsClients.queue_url`` caches)."""
    return str((client or sqs_client()).get_queue_url(QueueName=queue_name)["QueueUrl"])


@dataclass
class AwsClients:
    """The boto3 clients of one container (thread-safe, so shared by the handlers)."""

    s3: Any
    sqs: Any
    _queue_urls: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls) -> "AwsClients":
        return cls(s3=s3_client(), sqs=sqs_client())

    def queue_url(self, queue_name: str) -> str:
        """A queue's URL, asked once per container (it never changes for a name)."""
        if queue_name not in self._queue_urls:
            self._queue_urls[queue_name] = queue_url(queue_name, self.sqs)
        return self._queue_urls[queue_name]
