"""Support for the real-browser tests: skip rules, the demo server, cookie helpers.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (never a downloaded
one). Without it, or without the ``playwright`` package, browser tests are skipped —
unless ``CONSENTGATE_REQUIRE_BROWSER=1``, in which case they fail, so CI cannot pass
by silently skipping them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.services import free_port

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_ENV = "CONSENTGATE_REQUIRE_BROWSER"
SERVER_START_TIMEOUT = 15.0


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run")
    pytest.skip(reason)


def require_browser() -> ModuleType:
    """``playwright.sync_api``, or a skip (a failure under CONSENTGATE_REQUIRE_BROWSER=1)."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        import playwright.sync_api as sync_api
    except ImportError as exc:
        _unavailable(f"playwright cannot be imported ({exc})")
        raise  # unreachable: skip/fail raise; keeps type checkers happy
    return sync_api


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app over real HTTP on 127.0.0.1 in a background thread.

    Yields the base URL; on exit asks uvicorn to shut down and joins the thread.
    """
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the demo server stopped while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the demo server did not start in {SERVER_START_TIMEOUT}s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # pragma: no cover - only if uvicorn hangs
            server.force_exit = True
            thread.join(timeout=5)


def cookies_by_name(context: Any) -> dict[str, dict[str, Any]]:
    """The browser's cookie jar, keyed by name (the demo sets no duplicate names)."""
    return {c["name"]: c for c in context.cookies()}


def cookie_names(context: Any) -> set[str]:
    return set(cookies_by_name(context))


def assert_absent(context: Any, names: Sequence[str], when: str) -> None:
    present = sorted(cookie_names(context) & set(names))
    assert not present, f"{when}: the jar still holds {present}"


TIMEOUT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
NewContext = Callable[..., Any]
