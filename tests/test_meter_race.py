"""The server meter cannot be raced; a tampered meter cookie is replaced, not kept.

Bursts of 20 parallel reads through HTTP (one event loop, so the requests interleave at
every storage call) against SQLite, PostgreSQL and Redis: the number of full articles
is exactly what the limit allows, never more.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import client
from tests.services import (
    delete_keys,
    fresh_postgres_schema,
    require_postgres,
    require_redis,
    run_key_prefix,
    with_query,
)
from tests.test_wall_http import ArticleApp, full_text_present, hidden_markers, read

from consentgate import Config, ConsentGate

LIMIT = 3
BURST = 20
BACKENDS = ["sqlite", "postgresql", "redis"]


@asynccontextmanager
async def metered_gate(
    backend: str, tmp_path: Path, pg_url: str | None, **meter: Any
) -> AsyncIterator[ConsentGate]:
    """A gate with the server meter on ``backend``; its state is this test's alone
    (own SQLite file, own PostgreSQL schema, own Redis key prefix)."""
    options: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'ledger.db'}"}
    prefix = run_key_prefix("race:")  # inside this run's: see tests/services.py
    if backend == "postgresql":
        options["database_url"] = pg_url
    elif backend == "redis":
        options["meter_url"] = with_query(require_redis(), key_prefix=prefix)
    config = Config.from_mapping(
        {
            "secret_keys": [secrets.token_hex(24)],
            "wall": {
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "article_selector": "div.article-body",
                "lead_paragraphs": 2,
                "meter": {"store": "server", "limit": LIMIT, **meter},
            },
            **options,
        }
    )
    gate = ConsentGate(ArticleApp(), config=config)
    try:
        yield gate
    finally:
        await gate.ledger.close()
        if gate.redis is not None:
            await delete_keys(gate.redis, prefix)
            await gate.redis.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    name: str = request.param
    if name == "postgresql":
        with fresh_postgres_schema(require_postgres()) as url:
            yield name, url
    else:
        yield name, None


def full_count(responses: list[httpx.Response], slugs: list[str]) -> int:
    for response in responses:
        assert response.status_code == 200
    return sum(full_text_present(r.text, s) for r, s in zip(responses, slugs, strict=True))


def test_meter_race_burst_with_one_cookie_never_exceeds_reader_limit(
    backend: tuple[str, str | None], tmp_path: Path
) -> None:
    name, pg_url = backend
    slugs = [f"story{n}" for n in range(BURST)]

    async def scenario() -> tuple[bool, int]:
        async with (
            metered_gate(name, tmp_path, pg_url, network_limit=1000) as gate,
            client(gate) as c,
        ):
            first = await read(c, "/articles/first")  # the reader's id, one read spent
            burst = await asyncio.gather(*(read(c, f"/articles/{s}") for s in slugs))
        return full_text_present(first.text, "first"), full_count(list(burst), slugs)

    first_full, burst_full = asyncio.run(scenario())
    assert first_full
    assert burst_full == LIMIT - 1  # exactly what is left, however the requests interleave


def test_meter_race_cookieless_burst_from_one_network_never_exceeds_network_limit(
    backend: tuple[str, str | None], tmp_path: Path
) -> None:
    """No cookies at all (each request a new reader): the network count holds the line."""
    name, pg_url = backend
    slugs = [f"story{n}" for n in range(BURST)]

    async def scenario() -> int:
        async with metered_gate(name, tmp_path, pg_url, network_limit=LIMIT) as gate:

            async def fresh_read(slug: str) -> httpx.Response:
                async with client(gate) as c:  # a new private window per request
                    return await read(c, f"/articles/{slug}")

            burst = await asyncio.gather(*(fresh_read(s) for s in slugs))
        return full_count(list(burst), slugs)

    assert asyncio.run(scenario()) == LIMIT


# -- a tampered meter cookie -------------------------------------------------------------


def meter_cookies(response: httpx.Response) -> list[str]:
    return [
        h.split(";", 1)[0].split("=", 1)[1]
        for h in response.headers.get_list("set-cookie")
        if h.startswith("cg_meter=")
    ]


def test_meter_tampered_cookie_replaced_by_fresh_exhausted_one(tmp_path: Path) -> None:
    config = Config.from_mapping(
        {
            "secret_keys": [secrets.token_hex(24)],
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
            "wall": {
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "article_selector": "div.article-body",
                "lead_paragraphs": 2,
            },
        }
    )
    gate = ConsentGate(ArticleApp(), config=config)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(gate) as c:
            forged = await read(c, "/articles/alpha", headers={"cookie": "cg_meter=edited.value"})
            replacement = meter_cookies(forged)
            again = await read(
                c, "/articles/bravo", headers={"cookie": f"cg_meter={replacement[0]}"}
            )
        await gate.ledger.close()
        return forged, again

    forged, again = asyncio.run(scenario())
    assert hidden_markers(forged.text) == []  # walled, as an exhausted meter
    [value] = meter_cookies(forged)
    now = time.time()
    state = gate.articles.meter_codec.loads(value, now)
    assert state.tampered and state.reads == ()  # signed by us, and exhausted
    assert gate.articles.window.remaining(state, now) == 0
    # Sent back, it stays exhausted and is not re-signed (that would keep it for ever)...
    assert 'data-cg-reason="meter_tampered"' in again.text
    assert meter_cookies(again) == []
    # ...so it ages out with the period like any meter: a new reader afterwards.
    later = gate.articles.meter_codec.loads(value, now + 31 * 86_400)
    assert not later.tampered and later.is_new
