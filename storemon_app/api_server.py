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
from typing import Any, Callable, Optional
from urllib.parse import unquote

from storemon_app.paths import PROJECT_ROOT


def decode_path_parameters(match_route: Callable[..., Any]) -> Callable[..., Any]:
    """API Gateway hands a view its path parameters URL-decoded (``/stores/a%20b/timeline``
    gives ``store_id`` ``a b``); chalice's local server passes them raw, so a store id with a
    space, a slash or a non-ASCII letter was a 404 locally, links of the report page included.
    Wraps ``RouteMatcher.match_route`` to decode them as the gateway does."""
    def match(self: Any, url: str) -> Any:
        result = match_route(self, url)
        return result._replace(captured={name: unquote(value) for name, value in result.captured.items()})
    match.__wrapped__ = match_route  # type: ignore[attr-defined]
    return match


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storemon_app.api_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    from chalice import local
    from chalice.cli import create_local_server
    from chalice.cli.factory import CLIFactory

    if not hasattr(local.RouteMatcher.match_route, "__wrapped__"):
        local.RouteMatcher.match_route = decode_path_parameters(local.RouteMatcher.match_route)  # type: ignore[method-assign]

    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # as the chalice command sets it
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    factory = CLIFactory(str(PROJECT_ROOT), environ={})  # the stage's variables land here, not in os.environ
    create_local_server(factory, args.host, args.port, args.stage).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
