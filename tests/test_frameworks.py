"""The middleware as users add it: Starlette's Middleware list and FastAPI's add_middleware."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from tests.conftest import PAGE, SECRET, client, decide, run

from consentgate import Config, ConsentGate


def _fastapi_app(tmp_path: Path) -> FastAPI:
    app = FastAPI()
    config = Config.from_mapping(
        {
            "secret_keys": [SECRET],
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
            "cookies": [{"name": "ad_id", "category": "marketing"}],
        }
    )
    app.add_middleware(ConsentGate, config=config)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        response = HTMLResponse(PAGE)
        response.set_cookie("ad_id", "1")
        return response

    @app.get("/state")
    async def state(request: Request) -> dict[str, bool]:
        return {"marketing": request.state.consent.allows("marketing")}

    return app


def test_fastapi_add_middleware_enforces_consent(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, dict[str, bool], httpx.Response, dict[str, bool]]:
        async with client(_fastapi_app(tmp_path)) as c:
            before = await c.get("/")
            state_before = (await c.get("/state")).json()
            await decide(c, "accept_all")
            after = await c.get("/")
            state_after = (await c.get("/state")).json()
        return before, state_before, after, state_after

    before, state_before, after, state_after = run(scenario())
    assert 'id="consentgate-banner"' in before.text
    assert not any(h.startswith("ad_id=") for h in before.headers.get_list("set-cookie"))
    assert state_before == {"marketing": False}
    assert any(h.startswith("ad_id=1") for h in after.headers.get_list("set-cookie"))
    assert state_after == {"marketing": True}
