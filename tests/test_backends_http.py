"""The middleware on its scale-out backends, through HTTP: PostgreSQL and Redis for real."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from tests.conftest import SECRET, client, decide, html_app
from tests.services import (
    TcpProxy,
    fresh_postgres_schema,
    require_postgres,
    require_redis,
    run_redis_url,
    with_address,
)
from tests.test_wall_http import ArticleApp, full_text_present, hidden_markers, read

from consentgate import Config, ConsentGate
from consentgate.storage import SQLiteStorage


def _gate(app: Any, database_url: str, **options: Any) -> ConsentGate:
    config = Config.from_mapping({"secret_keys": [SECRET], "database_url": database_url, **options})
    return ConsentGate(app, config=config)


def _ledger_count(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM consent_ledger").fetchone()
    assert row is not None
    return int(row[0])


def test_backends_consent_recorded_in_postgresql(tmp_path: Path) -> None:
    with fresh_postgres_schema(require_postgres()) as url:

        async def scenario() -> httpx.Response:
            gate = _gate(html_app(), url)
            async with client(gate) as c:
                response = await decide(c, "accept_all")
            await gate.ledger.close()
            return response

        response = asyncio.run(scenario())
        assert response.status_code == 303
        assert _ledger_count(url) == 1


def test_backends_postgresql_down_means_503_and_no_cookie_then_recovers(tmp_path: Path) -> None:
    with fresh_postgres_schema(require_postgres()) as url:
        target = urlsplit(url)

        async def scenario() -> tuple[int, list[str], int]:
            proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
            await proxy.start()
            proxied = with_address(url, "127.0.0.1", proxy.port) + "&pool_timeout=1"
            gate = _gate(html_app(), proxied)
            async with client(gate) as c:
                assert (await decide(c, "accept_all")).status_code == 303
                await proxy.stop()
                down = await decide(c, "reject_all")
                await proxy.start()
                # Recovery is not instant: the pool reconnects with its own backoff and an
                # open breaker waits out its cooldown (5 s). A refused try leaves nothing
                # behind; the first that passes is recorded.
                deadline = asyncio.get_running_loop().time() + 30
                back = await decide(c, "reject_all")
                while back.status_code == 503 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.5)
                    back = await decide(c, "reject_all")
            await gate.ledger.close()
            await proxy.stop()
            cookies = [
                h for h in down.headers.get_list("set-cookie") if h.startswith("cg_consent=")
            ]
            return down.status_code, cookies, back.status_code

        down_status, down_cookies, back_status = asyncio.run(scenario())
        assert down_status == 503
        assert down_cookies == []
        assert back_status == 303
        assert _ledger_count(url) == 2  # the first decision survived; the failed one left nothing


def test_backends_server_meter_in_redis_survives_cleared_cookies(tmp_path: Path) -> None:
    # A key prefix of this test alone (no FLUSHDB: that would wipe other runs' keys).
    redis_url = run_redis_url(require_redis())

    async def scenario() -> tuple[list[str], str]:
        gate = _gate(
            ArticleApp(),
            f"sqlite:///{tmp_path / 'ledger.db'}",
            meter_url=redis_url,
            wall={
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "meter": {"store": "server", "network_limit": 3},
            },
        )
        pages = []
        for slug in ("alpha", "bravo", "charlie"):
            async with client(gate) as fresh:  # cookies cleared every time
                pages.append((await read(fresh, f"/articles/{slug}")).text)
        async with client(gate) as fresh:
            fourth = (await read(fresh, "/articles/delta")).text
        await gate.redis.aclose()
        return pages, fourth

    pages, fourth = asyncio.run(scenario())
    for page, slug in zip(pages, ("alpha", "bravo", "charlie"), strict=True):
        assert full_text_present(page, slug)
    assert hidden_markers(fourth) == []
    assert 'id="consentgate-cta"' in fourth


def test_backends_startup_refused_on_old_schema(tmp_path: Path) -> None:
    database = tmp_path / "old.db"

    async def prepare() -> None:
        storage = SQLiteStorage(database)
        await storage.migrate(target=1)
        await storage.close()

    asyncio.run(prepare())
    gate = _gate(html_app(), f"sqlite:///{database}")
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}])

    async def app_with_lifespan(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    gate.app = app_with_lifespan

    async def lifespan() -> None:
        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gate({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(lifespan())
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "consentgate migrate" in sent[0]["message"]
    version = (
        sqlite3.connect(database).execute("SELECT max(version) FROM schema_version").fetchone()
    )
    assert version == (1,)


@pytest.mark.parametrize("store", ["cookie", "wall"])
def test_backends_meter_store_outage_follows_on_store_error(tmp_path: Path, store: str) -> None:
    """Redis unreachable: the cookie meter decides alone, or the read is walled."""

    async def scenario() -> str:
        gate = _gate(
            ArticleApp(),
            f"sqlite:///{tmp_path / 'ledger.db'}",
            meter_url="redis://127.0.0.1:1/0",  # nothing listens there
            wall={
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "meter": {"store": "server", "on_store_error": store},
            },
        )
        async with client(gate) as c:
            page = (await read(c, "/articles/alpha")).text
        await gate.redis.aclose()
        return page

    page = asyncio.run(scenario())
    if store == "cookie":
        assert full_text_present(page, "alpha")
    else:
        assert hidden_markers(page) == []
