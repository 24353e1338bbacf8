"""The local stack: an emulated AWS, the Chalice app over HTTP, and the event pump.

Everything here runs the same handlers Lambda runs (``app.py``); it only does
what AWS would otherwise do around them: host the emulator, serve the routes,
and deliver SQS messages to the queue handlers.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, MutableMapping, Optional

from storemon_app.paths import CHALICE_DIR, OUT_DIR, PROJECT_ROOT
from storemon_app.stack import apply_stack, destroy_stack

DEFAULT_EMULATOR_PORT = 4566
DEFAULT_API_PORT = 8000
REGION = "us-east-1"
#: The services storemon uses, by the suffix of botocore's per-service endpoint variable.
SERVICES = ("dynamodb", "s3", "sqs")
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


class RuntimeFailure(Exception):
    """The local stack could not start or went away."""


def stage_environment(stage: str, names_stage: Optional[str] = None) -> dict[str, str]:
    """The stage's environment variables from ``.chalice/config.json`` (as Lambda gets them).

    With ``names_stage``, resource names ``storemon-<stage>-*`` become
    ``storemon-<names_stage>-*`` (a test run's own resources on a shared emulator).
    """
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    try:
        stage_config = config["stages"][stage]
    except KeyError:
        raise RuntimeFailure(f"stage {stage!r} is not in .chalice/config.json") from None
    env = dict(config.get("environment_variables", {}))
    env.update(stage_config.get("environment_variables", {}))
    if names_stage and names_stage != stage:
        old, new = f"storemon-{stage}-", f"storemon-{names_stage}-"
        env = {k: new + v[len(old):] if v.startswith(old) else v for k, v in env.items()}
    return env


def endpoint_variables(env: Optional[Mapping[str, str]] = None) -> list[str]:
    """Every endpoint variable botocore (and so PynamoDB) honours that is set:
    ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``."""
    env = os.environ if env is None else env
    return sorted(name for name in env
                  if name == ENDPOINT_VARIABLE or name.startswith(ENDPOINT_VARIABLE + "_"))


def clear_endpoints(env: Optional[MutableMapping[str, str]] = None) -> None:
    """Forget every endpoint variable, so botocore goes to AWS itself (or to moto in-process)."""
    env = os.environ if env is None else env
    for name in endpoint_variables(env):
        del env[name]


def external_endpoints(env: Optional[Mapping[str, str]] = None,
                       variable: str = ENDPOINT_VARIABLE) -> dict[str, str]:
    """Service -> endpoint URL for the services an endpoint variable sends elsewhere
    (``<variable>_<SERVICE>`` wins over ``<variable>``, as botocore does for
    ``AWS_ENDPOINT_URL``; the tests use the same rule for ``STOREMON_TEST_ENDPOINT``)."""
    env = os.environ if env is None else env
    found = {}
    for service in SERVICES:
        url = env.get(f"{variable}_{service.upper()}") or env.get(variable)
        if url:
            found[service] = url
    return found


def describe_endpoints(env: Optional[Mapping[str, str]] = None) -> str:
    """One line naming where each service goes, e.g. ``dynamodb http://…:8001, s3+sqs http://…:4566``."""
    by_url: dict[str, list[str]] = {}
    for service, url in external_endpoints(env).items():
        by_url.setdefault(url, []).append(service)
    return ", ".join(f"{'+'.join(services)} {url}" for url, services in by_url.items()) or "AWS"


def prepare_environment(stage: str, endpoint_url: Optional[str],
                        names_stage: Optional[str] = None) -> dict[str, str]:
    """Point this process (and its children) at the emulator with the stage's settings.

    ``endpoint_url`` becomes ``AWS_ENDPOINT_URL``; per-service variables already
    set keep sending their service elsewhere. ``chalicelib`` reads the settings on
    first use (``chalicelib.dependencies``), so import order does not matter, except
    that ``app``'s queue handlers are bound to the queue names of the environment it
    was imported in (Chalice's decorators need them then).
    """
    env = stage_environment(stage, names_stage)
    if endpoint_url:
        env[ENDPOINT_VARIABLE] = endpoint_url
    env.update({
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    })
    os.environ.update(env)
    return env


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, process: Optional[subprocess.Popen], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeFailure(f"{what} exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeFailure(f"{what} did not answer on {url} within {timeout:.0f} s")


def _listener_pid(port: int) -> Optional[int]:
    """The pid listening on a loopback TCP port, from /proc (Linux; None elsewhere or if hidden)."""
    inodes = _listening_socket_inodes(port)
    return _socket_owner(inodes) if inodes else None


def _listening_socket_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port``, from the kernel's TCP tables."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_owner(inodes: set[str]) -> Optional[int]:
    """The pid of a process holding one of these socket inodes open (None if hidden from us)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def _process_line(pid: int) -> tuple[str, int]:
    """(command line, parent pid) of a process."""
    proc = Path("/proc") / str(pid)
    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return command, parent


def port_in_use_message(port: int, advice: str) -> str:
    """Say what holds ``port``, naming a storemon stack left by an earlier run."""
    message = f"port {port} is in use"
    try:
        pid = _listener_pid(port)
        if pid is None:
            return f"{message}; {advice}"
        command, parent = _process_line(pid)
    except (OSError, ValueError, IndexError):
        return f"{message}; {advice}"
    if "moto.server" in command or "storemon_app.api_server" in command or "chalice local" in command:
        what = "moto's server" if "moto.server" in command else "the API server"
        owner = ""
        if parent != 1:
            try:
                owner_command, _ = _process_line(parent)
            except (OSError, ValueError, IndexError):
                owner_command = ""
            if "storemon_app" in owner_command:
                owner = f" of a storemon run still going (pid {parent}: {owner_command[:80]})"
        if not owner:
            return (f"{message} by {what} of a storemon stack left by an earlier run (pid {pid}, "
                    f"its parent is gone); stop it with `kill {pid}`, then start again")
        return f"{message} by {what}{owner}; stop that run first"
    return f"{message} by pid {pid} ({command[:80]}); {advice}"


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


#: Resolved here, in the parent: between fork and exec only this call runs (no import, no lock).
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, however it dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class StopRequested(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP asked the local stack to stop (the terminal closed, ``kill``)."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into ``StopRequested`` in the main thread, so every
    ``finally`` runs and the stack's children are stopped; later signals do not interrupt
    that cleanup."""
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise StopRequested(signal.Signals(signum).name)

    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _stop(process: Optional[subprocess.Popen]) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class LocalStack:
    """Emulator + resources + API server; ``pump`` delivers queue messages."""

    stage: str = "dev"
    emulator_port: int = DEFAULT_EMULATOR_PORT
    api_port: int = DEFAULT_API_PORT
    log_dir: Path = field(default_factory=lambda: OUT_DIR / "logs")
    endpoint_url: str = ""
    #: Name resources after this instead of the stage (see ``stage_environment``).
    names_stage: Optional[str] = None
    emulator: Optional[subprocess.Popen] = None
    api: Optional[subprocess.Popen] = None
    #: Service -> URL of the emulators this stack uses but did not start.
    external: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_emulator(self) -> None:
        """Use the endpoints the environment names (``AWS_ENDPOINT_URL`` for every service:
        LocalStack, your own moto_server; ``AWS_ENDPOINT_URL_DYNAMODB`` and the like for
        one service: DynamoDB Local); start moto's server only for the services left over."""
        external = external_endpoints()
        self.external = external
        for url in sorted(set(external.values())):
            _wait_for_http(url.rstrip("/") + "/", None, f"the emulator at {url}", timeout=20)
        if set(external) == set(SERVICES):
            self.endpoint_url = os.environ.get(ENDPOINT_VARIABLE, "")
            return
        if not port_is_free(self.emulator_port):
            raise RuntimeFailure(port_in_use_message(
                self.emulator_port,
                "stop what runs there, or set AWS_ENDPOINT_URL to use it as the emulator"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / "emulator.log", "ab")
        self.emulator = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.emulator_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        self.endpoint_url = f"http://127.0.0.1:{self.emulator_port}"
        _wait_for_http(self.endpoint_url + "/moto-api/", self.emulator, "moto's server")

    def create_resources(self) -> dict[str, str]:
        prepare_environment(self.stage, self.endpoint_url, self.names_stage)
        return apply_stack(self.names_stage or self.stage, os.environ["AWS_DEFAULT_REGION"])

    def destroy_resources(self) -> None:
        """Delete what ``create_resources`` made (fresh resources on an external emulator)."""
        destroy_stack(self.names_stage or self.stage, os.environ["AWS_DEFAULT_REGION"])

    def start_api(self) -> None:
        """chalice's local server (``chalice local``) serves app.py over real HTTP, with this
        process's environment: the stage's settings, the resources' names and the endpoints."""
        if not port_is_free(self.api_port):
            raise RuntimeFailure(port_in_use_message(self.api_port, "pass --api-port to pick another"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / "api.log", "ab")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "storemon_app.api_server", "--host", "127.0.0.1", "--port",
             str(self.api_port),
             "--stage", self.stage],
            cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        _wait_for_http(self.api_url + "/get_report", self.api, "the API server (chalice local)")

    def dead_child(self) -> Optional[str]:
        """A one-line reason if a process of the stack died, else None."""
        for process, what, log in ((self.emulator, "the emulator (moto's server)", "emulator.log"),
                                   (self.api, "the API server", "api.log")):
            if process is not None and process.poll() is not None:
                return f"{what} stopped (exit status {process.returncode}); see {self.log_dir / log}"
        for url in sorted(set(self.external.values())):
            parsed = urllib.parse.urlsplit(url)
            try:
                socket.create_connection((parsed.hostname, parsed.port or 80), timeout=2).close()
            except OSError:
                return f"the emulator at {url} stopped answering"
        return None

    def stop(self) -> None:
        _stop(self.api)
        _stop(self.emulator)


@contextmanager
def running_stack(stage: str = "dev", emulator_port: int = DEFAULT_EMULATOR_PORT,
                  api_port: int = DEFAULT_API_PORT, with_api: bool = True,
                  names_stage: Optional[str] = None) -> Iterator[LocalStack]:
    stack = LocalStack(stage=stage, emulator_port=emulator_port, api_port=api_port, names_stage=names_stage)
    try:
        stack.start_emulator()
        stack.create_resources()
        if with_api:
            stack.start_api()
        yield stack
    finally:
        stack.stop()
