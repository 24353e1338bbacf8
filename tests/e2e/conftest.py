"""End-to-end fixtures: the local stack on free ports, over real HTTP."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

import app as app_module
from storemon_app.runtime import LocalStack, free_port, running_stack
from tests import targets


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The local stack on free ports: moto's server (for the services the run does not send
    to a target) and ``chalice local``, one per test module (each module starts from empty
    tables). The event pump is the test's to run."""
    saved = dict(os.environ)
    app_module.dependencies.cache_clear()
    try:
        with targets.target_environment(), running_stack(emulator_port=free_port(), api_port=free_port(),
                                                         names_stage=targets.NAMES_STAGE) as running:
            try:
                yield running
            finally:
                if targets.TARGETS:
                    running.destroy_resources()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        app_module.dependencies.cache_clear()
