"""A real Varnish for the shared-cache tests, running the VCL the docs publish.

``varnishd`` (Debian's ``varnish`` package) runs in the foreground (``-F``) with its own
working directory, a free port and a small malloc store, in front of one backend. The
published VCL (``examples/varnish/consentgate.vcl``) stays the source: each run writes a
copy with only the backend's host and port changed. No varnishd: the tests are skipped,
unless ``CONSENTGATE_REQUIRE_SERVICES=1`` (CI), where they fail, as in tests/services.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
VCL = REPO_ROOT / "examples" / "varnish" / "consentgate.vcl"
VARNISHD_CANDIDATES = ("/usr/sbin/varnishd", "varnishd")
START_TIMEOUT = 30.0  # compiling the VCL with cc takes a few seconds on a busy box
STOP_TIMEOUT = 10.0
BACKEND = re.compile(
    r'(backend\s+default\s*\{[^}]*?\.host\s*=\s*)"[^"]*"(\s*;[^}]*?\.port\s*=\s*)"[^"]*"',
    re.DOTALL,
)


def _unavailable(message: str) -> None:
    if os.environ.get("CONSENTGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and CONSENTGATE_REQUIRE_SERVICES=1")
    pytest.skip(message)


def varnishd_path() -> str:
    """The varnishd binary, or a skip (a failure when CI requires the services)."""
    for candidate in VARNISHD_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    _unavailable("varnishd is not installed (Debian: apt-get install varnish)")
    raise AssertionError("unreachable: skip and fail raise")


def vcl_for_backend(host: str, port: int, source: Path = VCL) -> str:
    """The published VCL with its backend pointed at ``host:port``, nothing else changed."""
    text, count = BACKEND.subn(rf'\g<1>"{host}"\g<2>"{port}"', source.read_text())
    if count != 1:
        raise ValueError(f"{source} has no single `backend default` with .host and .port")
    return text


@dataclass(frozen=True)
class Varnish:
    """A running varnishd: where it listens, and its process (for the logs on failure)."""

    base_url: str
    process: subprocess.Popen[bytes]
    workdir: Path


def _wait_until_answering(varnish: Varnish, deadline: float) -> None:
    # Any HTTP answer (even a 503 from a backend still starting) means the child runs
    # the VCL; a refused or reset connection means it is not listening yet.
    while True:
        if varnish.process.poll() is not None:
            output = (varnish.workdir / "varnishd.log").read_text(errors="replace")
            raise RuntimeError(f"varnishd exited with {varnish.process.returncode}:\n{output}")
        try:
            httpx.get(f"{varnish.base_url}/consentgate/varnish-ready", timeout=2.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"varnishd did not answer within {START_TIMEOUT}s") from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate varnishd (the manager stops its child), kill the group on timeout."""
    if process.poll() is not None:
        return
    # The manager and its child share the process group started for them alone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def varnish(backend: str, workdir: Path, *, default_ttl: int = 60) -> Iterator[Varnish]:
    """Run varnishd with the published VCL in front of ``backend`` (``http://host:port``).

    ``workdir`` holds the VCL copy and varnishd's own directory (``-n``); on exit the
    process and its child are gone, whatever happened in between.
    """
    binary = varnishd_path()
    host_port = backend.removeprefix("http://").rstrip("/")
    host, _, port = host_port.rpartition(":")
    workdir.mkdir(parents=True, exist_ok=True)
    vcl = workdir / "consentgate.vcl"
    vcl.write_text(vcl_for_backend(host, int(port)))
    listen = free_port()
    command = [
        binary,
        "-F",  # foreground: this process is the manager, ours to stop
        "-n", str(workdir / "varnishd"),
        "-a", f"127.0.0.1:{listen}",
        "-f", str(vcl),
        "-s", "malloc,32m",
        # Tests run as any user, often root: no jail, so varnishd needs no other
        # account to read the temporary directory.
        "-j", "none",
        "-p", f"default_ttl={default_ttl}",
        # A busy 2-core test box: a few threads are plenty.
        "-p", "thread_pools=1",
        "-p", "thread_pool_min=10",
        "-p", "thread_pool_max=100",
    ]  # fmt: skip
    # A file, not a pipe: a pipe nobody reads fills up and blocks varnishd.
    with (workdir / "varnishd.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it reaches the child
        )
    running = Varnish(f"http://127.0.0.1:{listen}", process, workdir)
    try:
        _wait_until_answering(running, time.monotonic() + START_TIMEOUT)
        yield running
    finally:
        _stop(process)
