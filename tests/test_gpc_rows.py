"""Anonymous GPC traffic cannot grow the append-only ledger without bound.

A page view with ``Sec-GPC: 1`` and no consent cookie is honoured at once and counted
in the day's counters; the ledger gets one row per consent id, written when a browser
sends its consent cookie back. 200 cookieless requests write no row at all.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from tests.conftest import client, html_app, make_gate

from consentgate import ConsentGate
from consentgate.consent.ledger import GPC_WITHOUT_COOKIE

GPC = {"sec-gpc": "1", "accept": "text/html"}
# The app sets a marketing and an analytics cookie on every page (see make_gate's registry).
APP_COOKIES = (("set-cookie", "ad_id=1; Path=/"), ("set-cookie", "_stats_id=1; Path=/"))


def gate_for(tmp_path: Path) -> ConsentGate:
    # Opt-out region: marketing would be allowed without the signal, so a dropped ad_id
    # shows the signal was honoured.
    return make_gate(html_app(headers=APP_COOKIES), tmp_path, regions={"default": "opt-out"})


def set_cookie_names(response: httpx.Response) -> set[str]:
    return {h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")}


async def counters(gate: ConsentGate) -> dict[str, int]:
    await gate.metrics.flush()
    today = datetime.now(UTC).date()
    rows = await gate.ledger.storage.counts(today, today + timedelta(days=1))
    return {name: value for _, name, value in rows}


def test_gpc_rows_200_cookieless_page_views_write_no_row_and_are_counted(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[httpx.Response], int, dict[str, int]]:
        gate = gate_for(tmp_path)
        responses = []
        async with client(gate, headers=GPC) as c:
            for _ in range(200):
                c.cookies.clear()  # a client that keeps no cookies
                responses.append(await c.get("/"))
        await gate.ledger.ensure_open()  # cookieless page views never needed storage
        rows = await gate.ledger.storage.count_consents()
        counted = await counters(gate)
        await gate.ledger.close()
        return responses, rows, counted

    responses, rows, counted = asyncio.run(scenario())
    for response in responses:
        names = set_cookie_names(response)
        assert "ad_id" not in names  # honoured on each request, at once
        assert "_stats_id" in names
    assert rows == 0
    assert counted.get(GPC_WITHOUT_COOKIE) == 200


def test_gpc_rows_browser_keeping_cookies_gets_one_row_for_its_consent_id(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[httpx.Response], list[str], str | None]:
        gate = gate_for(tmp_path)
        async with client(gate, headers=GPC) as c:
            responses = [await c.get("/") for _ in range(20)]
            consent_id = gate.codec.loads(c.cookies.get("cg_consent"))
        storage = gate.ledger.storage
        rows = [rec.action async for rec in storage.iter_consents()]
        history = await storage.consent_history(consent_id.consent_id) if consent_id else []
        await gate.ledger.close()
        return responses, rows, history[0].action if history else None

    responses, rows, first_action = asyncio.run(scenario())
    assert all("ad_id" not in set_cookie_names(r) for r in responses)
    assert rows == ["gpc"]  # one row in 20 page views
    assert first_action == "gpc"  # and it belongs to the id the browser holds


def test_gpc_rows_one_row_per_browser_never_per_page_view(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, int]]:
        gate = gate_for(tmp_path)
        for _ in range(5):  # five browsers, six page views each
            async with client(gate, headers=GPC) as c:
                for _ in range(6):
                    await c.get("/")
        await gate.ledger.ensure_open()  # cookieless page views never needed storage
        rows = await gate.ledger.storage.count_consents()
        counted = await counters(gate)
        await gate.ledger.close()
        return rows, counted

    rows, counted = asyncio.run(scenario())
    assert rows == 5
    assert counted.get(GPC_WITHOUT_COOKIE) == 5  # each browser's first, cookieless view
