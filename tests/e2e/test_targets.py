"""Which AWS the tools and the tests talk to, with something answering at the other end: moto's
server only for the services no variable sends elsewhere, an explicit endpoint for every service,
and the in-process tests deaf to exported variables (the variables alone:
tests/unit/test_endpoint_variables.py)."""
from __future__ import annotations

import argparse
import http.server
import os
import subprocess
import sys
import threading
from typing import Iterator

import pytest

from storemon_app.paths import PROJECT_ROOT
from storemon_app.runtime import LocalStack, external_endpoints, free_port

CLOSED = "http://127.0.0.1:9"  # discard port: nothing answers


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def answering_url() -> Iterator[str]:
    """Something that answers HTTP, standing in for an external emulator."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_moto_serves_only_the_services_no_variable_sends_elsewhere(monkeypatch, answering_url):
    for service in ("DYNAMODB", "S3", "SQS"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", answering_url)
    everything_external = LocalStack(emulator_port=free_port())
    everything_external.start_emulator()
    assert everything_external.emulator is None  # no moto that would receive no traffic

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    monkeypatch.setenv("AWS_ENDPOINT_URL", answering_url)
    general_too = LocalStack(emulator_port=free_port())
    general_too.start_emulator()
    assert general_too.emulator is None and general_too.endpoint_url == answering_url

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    dynamodb_only = LocalStack(emulator_port=free_port())
    try:
        dynamodb_only.start_emulator()  # S3 and SQS still need an emulator
        assert dynamodb_only.emulator is not None and dynamodb_only.emulator.poll() is None
        assert dynamodb_only.endpoint_url == f"http://127.0.0.1:{dynamodb_only.emulator_port}"
    finally:
        dynamodb_only.stop()


def test_an_explicit_endpoint_takes_every_service(monkeypatch, answering_url):
    from storemon_app import cli

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", CLOSED)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # prepare_environment writes the stage's names
    cli._connect(argparse.Namespace(endpoint=answering_url, stage="dev"))
    assert external_endpoints() == dict.fromkeys(("dynamodb", "s3", "sqs"), answering_url)


def test_in_process_tests_ignore_exported_endpoint_variables():
    """A developer's shell may export LocalStack's variables; the in-process moto tests must not
    follow them."""
    env = dict(os.environ, AWS_ENDPOINT_URL=CLOSED, AWS_ENDPOINT_URL_DYNAMODB=CLOSED,
               AWS_ENDPOINT_URL_S3=CLOSED, AWS_ENDPOINT_URL_SQS=CLOSED)
    for name in [n for n in env if n.startswith("STOREMON_TEST_ENDPOINT")]:
        del env[name]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/integration/test_infra.py::test_applied_stack_has_ttl_and_notification"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
