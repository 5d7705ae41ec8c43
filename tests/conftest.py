"""Shared helpers: tiny inline apps, a gate with a throw-away ledger, an HTTP client."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tests.browser_support import (
    DESKTOP,
    TIMEOUT_MS,
    NewContext,
    launch_chromium,
    require_browser,
)
from tests.services import POSTGRES_SCHEMA_PREFIX, REDIS_KEY_PREFIX, postgres_url, redis_url

from consentgate import Config, ConsentGate

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPORA = REPO_ROOT.parent / "shared" / "corpora"
SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-secret-key-0123456789-abcdefghijklmnopq"
T = TypeVar("T")

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def corpora_dir(name: str) -> Path:
    """A corpus folder, or a skip (a failure when CI requires the corpora)."""
    path = CORPORA / name
    if not path.exists():
        if os.environ.get("CONSENTGATE_REQUIRE_CORPORA") == "1":
            pytest.fail(f"{path} is missing and CONSENTGATE_REQUIRE_CORPORA=1")
        pytest.skip(f"{path} is absent (the shared corpora sit beside the checkout)")
    return path


PAGE = (
    "<!DOCTYPE html><html><head><title>Front page</title></head><body>"
    "<h1>News</h1>"
    '<script type="text/plain" data-consent="analytics" data-src="/stats.js"></script>'
    '<iframe data-consent="marketing" data-src="/video.html" title="video"></iframe>'
    "<p>Hello</p></body></html>"
)

Headers = Sequence[tuple[str, str]]


def html_app(
    body: str = PAGE,
    *,
    headers: Headers = (),
    chunk_size: int | None = None,
    status: int = 200,
    content_type: str = "text/html; charset=utf-8",
) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """A raw ASGI app answering every request with ``body``, optionally in chunks."""
    data = body.encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        if chunk_size is None:
            await send({"type": "http.response.body", "body": data, "more_body": False})
            return
        for i in range(0, len(data), chunk_size):
            await send(
                {"type": "http.response.body", "body": data[i : i + chunk_size], "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def tamper_signature(value: str) -> str:
    """``value`` with one character of its signature changed, surely.

    Not the last characters: a base64 signature's last character carries only a few
    bits, so replacing it (or the last two) with look-alikes can decode to the very
    same bytes, about one time in 256, and a "tampered" value verifies."""
    position = len(value) - 10
    replacement = "B" if value[position] == "A" else "A"
    return value[:position] + replacement + value[position + 1 :]


def make_gate(app: Any, tmp_path: Path, **options: Any) -> ConsentGate:
    options.setdefault("secret_keys", [SECRET])
    options.setdefault("database_url", f"sqlite:///{tmp_path / 'ledger.db'}")
    options.setdefault(
        "cookies",
        [
            {"name": "_stats*", "category": "analytics"},
            {"name": "ad_id", "category": "marketing"},
            {"name": "text_size", "category": "preferences"},
            {"name": "session", "category": "necessary"},
        ],
    )
    return ConsentGate(app, config=Config.from_mapping(options))


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("base_url", "http://news.test")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), **kwargs)


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_token(c: httpx.AsyncClient, path: str = "/consentgate/settings") -> str:
    """Load a page as a reader would and take the token from its consent form."""
    response = await c.get(path, headers={"accept": "text/html"})
    match = CSRF_FIELD.search(response.text)
    assert match, "the page carries no consent form"
    return match.group(1)


async def decide(
    c: httpx.AsyncClient, action: str, categories: Sequence[str] = (), next_url: str = "/"
) -> httpx.Response:
    token = await csrf_token(c)
    data: dict[str, Any] = {"action": action, "csrf_token": token, "next": next_url}
    if categories:
        data["category"] = list(categories)
    return await c.post("/consentgate/consent", data=data)


# -- one run's PostgreSQL schemas and Redis keys ------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _run_leaves_nothing_behind() -> Iterator[None]:
    """At the end of the session, drop this run's schemas and delete its Redis keys.

    Each test makes its own (tests.services: schemas named POSTGRES_SCHEMA_PREFIX…, keys
    under REDIS_KEY_PREFIX) and removes them itself; this catches what an interrupted
    or failed test left, and touches nothing of another run.
    """
    yield
    _drop_run_schemas()
    _delete_run_keys()


def _drop_run_schemas() -> None:
    try:
        import psycopg

        with psycopg.connect(postgres_url(), autocommit=True, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                (POSTGRES_SCHEMA_PREFIX,),
            ).fetchall()
            for (schema,) in rows:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    except Exception:  # no PostgreSQL here: nothing of ours can be there
        pass


def _delete_run_keys() -> None:
    try:
        import redis

        client = redis.Redis.from_url(redis_url(), socket_connect_timeout=2, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=REDIS_KEY_PREFIX + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    except Exception:  # no Redis here: nothing of ours can be there
        pass


# -- browser fixtures, shared by the test_browser_* modules -----------------------------
# Each module defines its own ``site`` fixture (the server it tests); these only start
# Chromium when a test asks for them.
@pytest.fixture(scope="module")
def sync_api() -> Any:
    return require_browser()


@pytest.fixture(scope="module")
def browser(sync_api: Any) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_context(browser: Any, site: str) -> Iterator[NewContext]:
    """Make fresh browser contexts (clean cookie jars); all are closed afterwards."""
    made: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("base_url", site)
        options.setdefault("viewport", DESKTOP)
        options.setdefault("locale", "en-GB")
        options.setdefault("reduced_motion", "reduce")
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
