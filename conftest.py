"""Root conftest: the stage environment is loaded here, before any test imports ``app``
(its queue handlers are bound to the queue names of the environment it is imported in)."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from storemon_app.runtime import clear_endpoints, stage_environment  # noqa: E402
from tests import targets  # noqa: E402

# names of their own for a run on an external target (tests/targets.py)
os.environ.update(stage_environment("dev", targets.NAMES_STAGE))
# In-process moto unless a test starts a server: every endpoint variable, per-service ones
# too, would send botocore elsewhere. Targets for the tests are STOREMON_TEST_ENDPOINT*.
clear_endpoints()
os.environ.update({
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "INGEST_BATCH_ROWS": "1000",
})


def pytest_report_header(config):
    return f"storemon target: {targets.describe()} (resources storemon-{targets.NAMES_STAGE}-*)"
