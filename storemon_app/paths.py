"""Where things are in the checkout: the one home of the paths the local tools and tests use
(nothing here is deployed; Lambda's code never needs the checkout)."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The tables, queues and bucket: one CloudFormation template for production and the emulators.
TEMPLATE_PATH = PROJECT_ROOT / "infra" / "resources.json"
#: Stages, their environment variables and IAM policies.
CHALICE_DIR = PROJECT_ROOT / ".chalice"
#: Everything the tools write: reports, logs, generated data, benchmark results (git-ignored).
OUT_DIR = PROJECT_ROOT / "out"
#: The real data sets, beside the checkout where CI has them (absent elsewhere: callers check).
SHARED_REAL = PROJECT_ROOT.parent / "shared" / "data" / "real"
