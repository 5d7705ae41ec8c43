"""One failure path for every route: the consent endpoints, the account pages and the
dashboard answer their failures alike (JSON for a JSON client, else their own page), and
the operator's ``failure_response`` hook answers the readers' routes, never the
dashboard's."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse, Response
from tests.conftest import SECRET, client, html_app, run
from tests.test_accounts_http import form_token
from tests.test_cli_operator import check_html

from consentgate import Config, ConsentGate, Failure
from consentgate.operator.dashboard import Dashboard
from consentgate.visitor import Visitor
from consentgate.web.failures import FailurePage, failure_response
from consentgate.web.forms import RequestFailure

TOKEN = "admin-token-for-failure-tests-0123456789abcdef"
ADMIN = "/consentgate/admin"
ADMIN_OPTIONS = {"token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}

Call = tuple[Failure, str, Visitor, bool]


class Hook:
    """An operator's failure_response: the site's own look, and what it was asked."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, failure: Failure, message: str, visitor: Visitor, json: bool) -> Response:
        self.calls.append((failure, message, visitor, json))
        return PlainTextResponse(f"the site's own page: {failure.code}", status_code=failure.status)


def gate(tmp_path: Path, hook: Hook | None = None, **options: Any) -> ConsentGate:
    options.setdefault("secret_keys", [SECRET])
    options.setdefault("database_url", f"sqlite:///{tmp_path / 'ledger.db'}")
    options.setdefault("admin", ADMIN_OPTIONS)
    return ConsentGate(html_app(), config=Config.from_mapping(options), failure_response=hook)


def assert_json_error(response: httpx.Response, failure: Failure) -> dict[str, Any]:
    assert response.status_code == failure.status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == failure.code
    assert set(body) == {"error", "message"} and body["message"]
    return body


# -- the operator's hook answers the readers' routes ---------------------------------------


def test_failures_operator_hook_answers_account_page_csrf_failure(tmp_path: Path) -> None:
    hook = Hook()
    site = gate(tmp_path, hook)

    async def go() -> httpx.Response:
        async with client(site) as c:
            # No CSRF cookie, no token: the form was not ours.
            data = {"email": "reader@example.com", "password": "x" * 12}
            return await c.post("/consentgate/login", data=data, headers=HTML)

    response = run(go())
    assert response.status_code == 403
    assert response.text == "the site's own page: csrf_cookie_missing"
    [(failure, message, visitor, json)] = hook.calls
    assert failure is Failure.CSRF_COOKIE_MISSING
    assert message == Failure.CSRF_COOKIE_MISSING.message
    assert isinstance(visitor, Visitor) and json is False


def test_failures_operator_hook_answers_consent_endpoint_failure(tmp_path: Path) -> None:
    hook = Hook()
    site = gate(tmp_path, hook)

    async def go() -> httpx.Response:
        async with client(site) as c:
            return await c.post("/consentgate/consent", json={"action": "save"}, headers=JSON)

    response = run(go())
    assert response.text == "the site's own page: csrf_cookie_missing"
    assert [call[3] for call in hook.calls] == [True]  # it is told the client wants JSON


def test_failures_operator_hook_answer_still_carries_retry_after(tmp_path: Path) -> None:
    # The hook is not given the wait: the one failure path adds it to the hook's answer.
    hook = Hook()
    site = gate(tmp_path, hook, accounts={"register_per_hour": 1})

    async def go() -> list[httpx.Response]:
        async with client(site) as c:
            answers = []
            for n in range(2):
                data = {
                    "csrf_token": await form_token(c, "/consentgate/register"),
                    "email": f"reader{n}@example.com",
                    "password": "correct horse battery",
                    "accept_policy": "yes",
                }
                answers.append(await c.post("/consentgate/register", data=data))
                c.cookies.delete("cg_session")
            return answers

    first, limited = run(go())
    assert first.status_code == 200  # "look in your inbox"
    assert limited.status_code == 429
    assert limited.text == "the site's own page: too_many_attempts"
    assert limited.headers["retry-after"] == "3600"
    [(failure, message, _, _)] = hook.calls
    assert failure is Failure.TOO_MANY_ATTEMPTS
    assert "too many attempts" in message.lower()  # the account pages' own wording


# -- JSON clients get the JSON error shape from every surface ------------------------------


def test_failures_json_client_gets_json_error_from_account_page(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(site) as c:
            no_token = await c.post("/consentgate/login", data={"email": "a"}, headers=JSON)
            await c.get("/consentgate/login")  # the CSRF cookie, but no form token
            mismatch = await c.post("/consentgate/policy", data={}, headers=JSON)
            return no_token, mismatch

    no_token, mismatch = run(go())
    assert_json_error(no_token, Failure.CSRF_COOKIE_MISSING)
    assert_json_error(mismatch, Failure.CSRF_TOKEN_MISMATCH)
    for response in (no_token, mismatch):
        assert response.headers["cache-control"] == "private, no-store"


def test_failures_json_client_gets_json_rate_limit_with_retry_after(tmp_path: Path) -> None:
    site = gate(tmp_path, accounts={"register_per_hour": 1})

    async def go() -> list[httpx.Response]:
        async with client(site) as c:
            answers = []
            for n in range(2):
                data = {
                    "csrf_token": await form_token(c, "/consentgate/register"),
                    "email": f"reader{n}@example.com",
                    "password": "correct horse battery",
                    "accept_policy": "yes",
                }
                answers.append(await c.post("/consentgate/register", data=data, headers=JSON))
                c.cookies.delete("cg_session")
            return answers

    first, limited = run(go())
    assert first.status_code == 200  # "look in your inbox"
    assert_json_error(limited, Failure.TOO_MANY_ATTEMPTS)
    assert limited.headers["retry-after"] == "3600"


def test_failures_json_client_gets_json_error_from_dashboard(tmp_path: Path) -> None:
    site = gate(tmp_path)
    bearer = {**JSON, "authorization": f"Bearer {TOKEN}"}

    async def go() -> dict[str, httpx.Response]:
        async with client(site) as c:
            wrong = {**JSON, "authorization": "Bearer not-the-token"}
            return {
                "anonymous": await c.get(ADMIN, headers=JSON),
                "wrong": await c.get(ADMIN, headers=wrong),
                "window": await c.get(ADMIN, params={"days": "0"}, headers=bearer),
                "logout": await c.post(f"{ADMIN}/logout", data={}, headers=JSON),
                "form": await c.post(f"{ADMIN}/login", json={"token": TOKEN}),
            }

    answers = run(go())
    assert_json_error(answers["anonymous"], Failure.ADMIN_SIGN_IN_REQUIRED)
    assert answers["anonymous"].headers["www-authenticate"] == 'Bearer realm="consentgate admin"'
    assert_json_error(answers["wrong"], Failure.ADMIN_TOKEN_WRONG)
    assert 'error="invalid_token"' in answers["wrong"].headers["www-authenticate"]
    window = assert_json_error(answers["window"], Failure.BAD_WINDOW)
    assert "from 1 to 366" in window["message"]
    assert_json_error(answers["logout"], Failure.ADMIN_FORM_REFUSED)
    # A JSON body to a form: the reason the form could not be read, as JSON.
    assert_json_error(answers["form"], Failure.FORM_MEDIA_TYPE)
    for response in answers.values():
        # The dashboard's own headers, whatever the shape of the answer.
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"


def test_failures_json_client_gets_json_rate_limit_from_dashboard(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def go() -> httpx.Response:
        async with client(site) as c:
            wrong = {**JSON, "authorization": "Bearer not-the-token"}
            for _ in range(10):  # the free failures
                await c.get(ADMIN, headers=wrong)
            return await c.get(ADMIN, headers=wrong)

    limited = run(go())
    body = assert_json_error(limited, Failure.TOO_MANY_ATTEMPTS)
    assert limited.headers["retry-after"] == "1"
    assert body["message"] == "Too many attempts; try again in 1 seconds."


def test_failures_dashboard_off_answers_404_as_json_or_its_page(tmp_path: Path) -> None:
    site = gate(tmp_path, admin={})
    parts = (site.pages, site.keys, site.ledger.storage, site.ledger.ensure_open, site.backoff)
    site.endpoints.add_routes(Dashboard(*parts).routes())

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(site) as c:
            return await c.get(ADMIN, headers=JSON), await c.get(ADMIN, headers=HTML)

    as_json, as_page = run(go())
    assert_json_error(as_json, Failure.ADMIN_OFF)
    assert as_page.status_code == 404 and "Not found" in as_page.text
    assert as_page.headers["content-type"].startswith("text/html")


# -- the dashboard is an operator tool: the readers' hook never answers it ------------------


def test_failures_dashboard_failure_ignores_operator_hook(tmp_path: Path) -> None:
    hook = Hook()
    site = gate(tmp_path, hook)

    async def go() -> list[httpx.Response]:
        async with client(site) as c:
            return [
                await c.get(ADMIN),
                await c.get(ADMIN, headers=JSON),
                await c.get(ADMIN, headers={"authorization": "Bearer nope"}),
                await c.post(f"{ADMIN}/logout", data={}),
                await c.post(f"{ADMIN}/login", content=b"x", headers={"content-type": "text/csv"}),
            ]

    answers = run(go())
    assert [a.status_code for a in answers] == [401, 401, 401, 403, 415]
    assert hook.calls == []
    for response in answers:
        assert "the site's own page" not in response.text
        assert response.headers["x-frame-options"] == "DENY"
    page = answers[0].text
    assert "consentgate dashboard" in page and "Sign in to the dashboard." in page
    check_html(page)


def test_failures_dashboard_page_of_a_signed_in_failure_keeps_its_navigation(
    tmp_path: Path,
) -> None:
    site = gate(tmp_path)
    headers = {**HTML, "authorization": f"Bearer {TOKEN}"}

    async def go() -> httpx.Response:
        async with client(site) as c:
            return await c.get(ADMIN, params={"days": "400"}, headers=headers)

    response = run(go())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    check_html(page)
    assert "<h1>Window not accepted</h1>" in page and "from 1 to 366" in page
    assert "Show the last 30 days" in page and "Sign out" in page  # the navigation
    assert 'name="csrf_token"' in page and "cg_csrf=" in response.headers["set-cookie"]


# -- the function itself ------------------------------------------------------------------


def _page(failure: Failure, message: str) -> str:
    return f"<p>{failure.code}: {message}</p>"


PAGE = FailurePage(_page, {"x-surface": "test"})


@pytest.mark.parametrize("failure", list(Failure))
def test_failures_every_member_answers_its_status_and_code(failure: Failure) -> None:
    refused = RequestFailure(failure)
    as_json = failure_response(refused, wants_json=True, page=PAGE)
    assert as_json.status_code == failure.status
    assert as_json.body.startswith(b'{"error":"' + failure.code.encode())
    assert as_json.headers["cache-control"] == "private, no-store"
    as_html = failure_response(refused, wants_json=False, page=PAGE)
    assert as_html.status_code == failure.status
    assert as_html.body == f"<p>{failure.code}: {failure.message}</p>".encode()
    assert as_html.headers["x-surface"] == "test"
    assert "retry-after" not in as_html.headers and "www-authenticate" not in as_html.headers


def test_failures_retry_after_is_whole_seconds_at_least_one() -> None:
    for wait, header in ((0.2, "1"), (1.0, "1"), (1.01, "2"), (3600, "3600")):
        refused = RequestFailure(Failure.TOO_MANY_ATTEMPTS, retry_after=wait)
        for wants_json in (True, False):
            response = failure_response(refused, wants_json=wants_json, page=PAGE)
            assert response.headers["retry-after"] == header


# -- the router's own answers take the same path -------------------------------------------


def test_failures_router_method_not_allowed_names_the_methods(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(gate(tmp_path)) as c:
            as_json = await c.put("/consentgate/consent", headers=JSON)
            as_page = await c.delete("/consentgate/consent", headers=HTML)
            return as_json, as_page

    as_json, as_page = run(scenario())
    body = assert_json_error(as_json, Failure.METHOD_NOT_ALLOWED)
    assert "POST" in body["message"] and "GET" in as_json.headers["allow"]
    assert as_page.status_code == 405 and as_page.headers["allow"] == as_json.headers["allow"]
    assert as_page.headers["content-type"].startswith("text/html")


def test_failures_router_missing_static_file_is_404_through_the_hook(tmp_path: Path) -> None:
    hook = Hook()

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(gate(tmp_path)) as c:
            ours = await c.get("/consentgate/static/nope.css", headers=JSON)
        async with client(gate(tmp_path, hook)) as c:
            theirs = await c.get("/consentgate/static/nope.css", headers=HTML)
        return ours, theirs

    ours, theirs = run(scenario())
    assert_json_error(ours, Failure.NOT_FOUND)
    assert theirs.status_code == 404 and theirs.text == "the site's own page: not_found"
    assert [call[0] for call in hook.calls] == [Failure.NOT_FOUND]
