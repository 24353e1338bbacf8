"""Unit tests: no AWS at all, not even an emulator. The AWS fixtures are not visible here
(they live in tests/integration and tests/e2e), and any botocore call fails the test."""
from __future__ import annotations

from typing import Any

import pytest


class AwsCallInUnitTest(AssertionError):
    """A unit test reached botocore: it belongs in tests/integration."""


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.client import BaseClient

    def refuse(self: Any, operation: str, params: Any) -> Any:
        raise AwsCallInUnitTest(f"{operation}: unit tests make no AWS calls "
                                "(move the test to tests/integration)")

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)
