"""``chalice local`` for the local stack, with the process environment left as given.

``chalice local`` copies the stage's ``environment_variables`` over the
environment before importing ``app.py``. The runtime has already loaded that
same stage (``prepare_environment``) and may have renamed its resources (a
test run's fresh tables on an external emulator), so this runs chalice's own
local server, routes validated the same way, without that copy.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional

from storemon_app.paths import PROJECT_ROOT


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storemon_app.api_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    from chalice.cli import create_local_server
    from chalice.cli.factory import CLIFactory

    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # as the chalice command sets it
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    factory = CLIFactory(str(PROJECT_ROOT), environ={})  # the stage's variables land here, not in os.environ
    create_local_server(factory, args.host, args.port, args.stage).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
