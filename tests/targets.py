"""Where the tests that can run elsewhere run: one suite, several targets.

By default everything is moto (in-process, or its server for the HTTP tests).
``STOREMON_TEST_ENDPOINT`` sends every service to one external emulator
(LocalStack); ``STOREMON_TEST_ENDPOINT_DYNAMODB`` (``_S3``, ``_SQS``) sends one
service (DynamoDB Local), moto keeping the rest. The usual ``AWS_ENDPOINT_URL*``
variables are ignored on purpose (a developer's shell may export them).

On a target, resources get names of their own for the run
(``storemon-t<hex>-*``), are created fresh for each test (module, for the HTTP
tests) and deleted after it.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional

from storemon_app.runtime import SERVICES, external_endpoints

VARIABLE = "STOREMON_TEST_ENDPOINT"


def test_targets(env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Service -> endpoint URL of the services the run sends off moto."""
    return external_endpoints(env, VARIABLE)


test_targets.__test__ = False  # a helper, not a test
TARGETS = test_targets()
#: The names' stage: the config's own ("dev") on moto, a run's own off it.
NAMES_STAGE = f"t{uuid.uuid4().hex[:8]}" if TARGETS else "dev"
#: True when every service is external: no in-process moto at all.
ALL_EXTERNAL = set(TARGETS) == set(SERVICES)


def describe() -> str:
    return ", ".join(f"{service} at {url}" for service, url in TARGETS.items()) or "moto"


@contextmanager
def target_environment() -> Iterator[None]:
    """Point botocore at the targets (per-service variables) for the duration."""
    names = [f"AWS_ENDPOINT_URL_{service.upper()}" for service in TARGETS]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in TARGETS.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
