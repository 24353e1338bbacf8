"""Which AWS the tools talk to, read from the environment: every endpoint variable botocore
honours (``AWS_ENDPOINT_URL`` and the per-service ones) is handled (with servers:
tests/e2e/test_targets.py)."""
from __future__ import annotations

import argparse

from storemon_app import runtime
from storemon_app.runtime import describe_endpoints, external_endpoints

CLOSED = "http://127.0.0.1:9"  # discard port: nothing answers


def test_per_service_variables_win_over_the_general_one():
    env = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://d:2"}
    assert external_endpoints(env) == {"dynamodb": "http://d:2", "s3": "http://a:1", "sqs": "http://a:1"}
    assert describe_endpoints(env) == "dynamodb http://d:2, s3+sqs http://a:1"
    assert external_endpoints({"AWS_ENDPOINT_URL_S3": "http://s:3"}) == {"s3": "http://s:3"}
    assert describe_endpoints({}) == "AWS"


def test_endpoint_aws_clears_every_endpoint_variable(monkeypatch):
    from storemon_app import cli

    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", CLOSED)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", CLOSED)
    cli._connect(argparse.Namespace(endpoint="aws", stage="dev"))
    assert runtime.endpoint_variables() == []
