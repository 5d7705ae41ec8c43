"""The app's code gets a small API object on ``request.state.consentgate``, never the
middleware with its configuration, keys and storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import client, make_gate, run

from consentgate import SiteAPI


def test_site_api_is_what_the_app_gets_and_it_records_acceptances(tmp_path: Path) -> None:
    seen: list[Any] = []
    answers: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        api = scope["state"]["consentgate"]
        seen.append(api)
        answers.append(await api.needs_policy_acceptance("reader-9"))
        if scope["path"] == "/signup":
            record = await api.record_policy_acceptance(scope, "reader-9")
            assert record.user_id == "reader-9"
        answers.append(await api.needs_policy_acceptance("reader-9"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gate = make_gate(app, tmp_path)

    async def scenario() -> None:
        async with client(gate) as c:
            await c.get("/before")
            await c.post("/signup")
            await c.get("/after")

    run(scenario())
    assert answers == [True, True, True, False, False, False]
    assert all(api is gate.api for api in seen)
    api = seen[0]
    assert isinstance(api, SiteAPI)
    # Nothing of the middleware leaks through it.
    for name in ("app", "config", "keys", "ledger", "accounts", "endpoints"):
        assert not hasattr(api, name), name
    public = {n for n in dir(api) if not n.startswith("_")}
    assert public == {"record_policy_acceptance", "needs_policy_acceptance"}
