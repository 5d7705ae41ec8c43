"""The account endpoints through HTTP: register, sign in, sign out, re-accept the policy."""

from __future__ import annotations

import hashlib
import html
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run

from consentgate.accounts import SessionCodec

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(tmp_path / "ledger.db")
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def user_count(tmp_path: Path) -> int:
    """Users stored; 0 too when the request never even opened the database."""
    if not (tmp_path / "ledger.db").exists():
        return 0
    tables = rows(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'users'")
    return int(rows(tmp_path, "SELECT COUNT(*) FROM users")[0][0]) if tables else 0


async def form_token(c: httpx.AsyncClient, path: str) -> str:
    page = await c.get(path)
    match = CSRF_FIELD.search(page.text)
    assert match, f"{path} carries no form"
    return html.unescape(match.group(1))


async def post_registration(
    c: httpx.AsyncClient,
    email: str = "reader@example.com",
    password: str = PASSWORD,
    *,
    accept: bool = True,
    next_url: str = "/news/1",
) -> httpx.Response:
    """The registration form, posted: "look in your inbox" (200), whatever the address."""
    data = {
        "csrf_token": await form_token(c, "/consentgate/register"),
        "email": email,
        "password": password,
        "next": next_url,
    }
    if accept:
        data["accept_policy"] = "yes"
    return await c.post("/consentgate/register", data=data)


async def register(
    c: httpx.AsyncClient,
    email: str = "reader@example.com",
    password: str = PASSWORD,
    *,
    accept: bool = True,
    next_url: str = "/news/1",
) -> httpx.Response:
    """Registers, then signs in with the password as a returning reader does (an
    unverified account may, within accounts.verification_grace_hours): the sign-in's
    answer, or the registration's when it refused."""
    registered = await post_registration(c, email, password, accept=accept, next_url=next_url)
    if registered.status_code != 200:
        return registered
    return await login(c, email, password, next_url=next_url)


async def login(
    c: httpx.AsyncClient,
    email: str = "reader@example.com",
    password: str = PASSWORD,
    *,
    next_url: str = "/news/2",
) -> httpx.Response:
    data = {
        "csrf_token": await form_token(c, "/consentgate/login"),
        "email": email,
        "password": password,
        "next": next_url,
    }
    return await c.post("/consentgate/login", data=data)


def session_header(response: httpx.Response) -> str | None:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith("cg_session=")]
    return found[0] if found else None


# -- the registration form -------------------------------------------------------------


def test_register_form_boxes_unticked_labelled_and_linked(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path, policy={"version": "7"})) as c:
            return await c.get("/consentgate/register?next=/news/1")

    page = run(scenario())
    body = page.text
    assert page.status_code == 200
    assert "private" in page.headers["cache-control"]
    assert re.search(r'<label for="cg-email">', body)
    assert 'autocomplete="email"' in body and 'autocomplete="new-password"' in body
    checkboxes = re.findall(r"<input[^>]*type=\"checkbox\"[^>]*>", body)
    # The policy box alone: newsletters, when configured, are one box per list
    # (tests/test_newsletters_http.py).
    assert len(checkboxes) == 1
    assert all("checked" not in box for box in checkboxes)
    assert "required" in checkboxes[0]
    assert 'href="/privacy"' in body and "(version 7)" in body
    assert 'name="next" value="/news/1"' in body
    assert "/consentgate/static/banner.css" in body
    assert any(h.startswith("cg_csrf=") for h in page.headers.get_list("set-cookie"))


# -- registering -------------------------------------------------------------------------


def test_register_success_sets_session_and_records_acceptance(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, policy={"version": "2025-01"})

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            return await register(c)

    response = run(scenario())
    assert response.status_code == 303
    assert response.headers["location"] == "/news/1"
    cookie = session_header(response)
    assert cookie is not None
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    session = SessionCodec(gate.config.secret_keys, 30).loads(value)
    stored = rows(tmp_path, "SELECT id_hash, kind, subject FROM sessions")
    # The database holds only the hash of the cookie's session id, never the id.
    assert session is not None
    assert stored == [
        (hashlib.sha256(session.nonce.encode()).hexdigest(), "reader", session.user_id)
    ]
    users = rows(tmp_path, "SELECT id, email FROM users")
    assert session is not None and users == [(session.user_id, "reader@example.com")]
    acceptances = rows(
        tmp_path,
        "SELECT user_id, purpose, granted, method, policy_version, policy_sha256 FROM acceptances",
    )
    sha = gate.config.policy.text_sha256
    assert acceptances == [
        (session.user_id, "privacy_policy", 1, "registration", "2025-01", sha),
    ]


def test_register_over_https_session_cookie_is_secure(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path), base_url="https://news.test") as c:
            return await register(c)

    cookie = session_header(run(scenario()))
    assert cookie is not None and "Secure" in cookie


def test_register_without_newsletter_records_no_newsletter_row(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)

    run(scenario())
    assert rows(tmp_path, "SELECT purpose FROM acceptances") == [("privacy_policy",)]


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"email": "not-an-address"}, "email", "e-mail address such as"),
        ({"password": "short"}, "password", "at least 10 characters"),
        ({"accept": False}, "accept_policy", "acceptance of the privacy policy"),
    ],
)
def test_register_invalid_field_is_400_with_error_next_to_it(
    tmp_path: Path, changes: dict[str, Any], field: str, fragment: str
) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await register(c, **changes)

    response = run(scenario())
    body = response.text
    assert response.status_code == 400
    assert session_header(response) is None
    assert f'id="cg-{field}-error"' in body and fragment in body
    assert re.search(rf'id="cg-{field}"[^>]*aria-describedby="[^"]*cg-{field}-error', body)
    assert 'role="alert"' in body
    assert PASSWORD not in body
    assert user_count(tmp_path) == 0


def test_register_error_keeps_email_never_password(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await register(c, email="kept@example.com", accept=False)

    body = run(scenario()).text
    assert 'value="kept@example.com"' in body
    assert PASSWORD not in body


def test_register_answers_look_in_your_inbox_and_signs_nobody_in(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await post_registration(c)

    response = run(scenario())
    assert response.status_code == 200
    assert "Look in your inbox" in response.text
    assert session_header(response) is None
    assert user_count(tmp_path) == 1


def test_register_escapes_what_the_reader_typed(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await register(c, email='"><script>alert(1)</script>', accept=False)

    body = run(scenario()).text
    assert "<script>alert(1)" not in body
    assert "&quot;&gt;&lt;script&gt;" in body


def test_register_without_csrf_token_is_403_and_creates_nothing(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await c.get("/consentgate/register")
            data = {"email": "a@example.com", "password": PASSWORD, "accept_policy": "yes"}
            return await c.post("/consentgate/register", data=data)

    response = run(scenario())
    assert response.status_code == 403
    assert session_header(response) is None
    assert user_count(tmp_path) == 0


def test_register_from_another_origin_is_403(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            token = await form_token(c, "/consentgate/register")
            data = {
                "csrf_token": token,
                "email": "a@example.com",
                "password": PASSWORD,
                "accept_policy": "yes",
            }
            return await c.post(
                "/consentgate/register", data=data, headers={"origin": "https://evil.test"}
            )

    assert run(scenario()).status_code == 403


def test_register_next_to_another_site_goes_home(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await register(c, next_url="//evil.test/phish")

    assert run(scenario()).headers["location"] == "/"


def test_register_rate_limited_per_address_with_retry_after(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"register_per_hour": 2})

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            answers = []
            for n in range(3):
                answers.append(await register(c, email=f"reader{n}@example.com"))
                c.cookies.delete("cg_session")
            return answers

    answers = run(scenario())
    assert [a.status_code for a in answers] == [303, 303, 429]
    assert answers[2].headers["retry-after"] == "3600"
    assert "Too many attempts" in answers[2].text
    assert user_count(tmp_path) == 2


def test_register_storage_failure_is_503_and_no_usable_account(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(gate) as c:
            await c.get("/consentgate/register")
            await gate.ledger.ensure_open()
            raw = sqlite3.connect(tmp_path / "ledger.db")
            with raw:
                raw.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON acceptances "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            raw.close()
            failed = await register(c)
            return failed, await login(c)

    failed, signed_in = run(scenario())
    assert failed.status_code == 503
    assert session_header(failed) is None
    assert "no account was created" in failed.text
    assert user_count(tmp_path) == 0
    assert signed_in.status_code == 400


# -- signing in and out ------------------------------------------------------------------


def test_login_right_password_sets_session_and_redirects(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)
            c.cookies.delete("cg_session")
            return await login(c, email=" Reader@Example.com")

    response = run(scenario())
    assert response.status_code == 303
    assert response.headers["location"] == "/news/2"
    assert session_header(response) is not None


def test_login_unknown_email_and_wrong_password_same_answer(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)
            c.cookies.delete("cg_session")
            wrong = await login(c, password="not the password")
            unknown = await login(c, email="nobody@example.com")
            return wrong, unknown

    wrong, unknown = run(scenario())
    assert wrong.status_code == unknown.status_code == 400
    assert "E-mail or password is not right." in wrong.text
    assert "E-mail or password is not right." in unknown.text
    assert session_header(wrong) is None and session_header(unknown) is None

    def without_specifics(response: httpx.Response) -> str:
        text = re.sub(r'value="[^"]*"', 'value=""', response.text)
        return text

    assert without_specifics(wrong) == without_specifics(unknown)


def test_login_failures_from_other_addresses_never_delay_this_one(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 2})

    async def attempt(ip: str, password: str) -> int:
        transport = httpx.ASGITransport(app=gate, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://news.test") as c:
            return (await login(c, password=password)).status_code

    async def scenario() -> tuple[list[int], int]:
        async with client(gate) as c:
            await register(c)
        wrong = [await attempt("198.51.100.7", "wrong password!") for _ in range(3)]
        return wrong, await attempt("203.0.113.9", PASSWORD)

    wrong, owner = run(scenario())
    assert wrong == [400, 400, 429]
    assert owner == 303


def test_login_rate_limited_per_address(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"login_per_15_minutes": 2})

    async def scenario() -> list[httpx.Response]:
        async with client(gate) as c:
            return [await login(c, email="r@example.com") for n in range(3)]

    answers = run(scenario())
    assert [a.status_code for a in answers] == [400, 400, 429]
    assert answers[2].headers["retry-after"] == "1"  # the first delay: one second


def test_login_storage_failure_is_503(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            await gate.ledger.ensure_open()
            # The database goes away under a running gate (the ledger still thinks it open).
            await gate.ledger.storage.close()
            return await login(c)

    response = run(scenario())
    assert response.status_code == 503
    assert session_header(response) is None


def test_logout_clears_session_cookie(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)
            token = await form_token(c, "/consentgate/login")
            return await c.post("/consentgate/logout", data={"csrf_token": token, "next": "/x"})

    response = run(scenario())
    assert response.status_code == 303 and response.headers["location"] == "/x"
    cookie = session_header(response)
    assert cookie is not None and "Max-Age=0" in cookie


def test_logout_without_csrf_is_403_and_keeps_session(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)
            return await c.post("/consentgate/logout", data={"next": "/x"})

    response = run(scenario())
    assert response.status_code == 403
    assert session_header(response) is None


def test_logout_get_is_405(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get("/consentgate/logout")

    assert run(scenario()).status_code == 405


# -- accepting a new policy version ------------------------------------------------------


def test_policy_page_signed_out_redirects_to_login_and_back(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get("/consentgate/policy?next=/news/3")

    response = run(scenario())
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/consentgate/login?next=/consentgate/policy%3Fnext%3D/news/3"
    )


def test_policy_version_bump_asks_again_and_records_reacceptance(tmp_path: Path) -> None:
    first = make_gate(html_app(), tmp_path, policy={"version": "1"})

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, str]:
        async with client(first) as c:
            await register(c)
            session = c.cookies["cg_session"]
        bumped = make_gate(html_app(), tmp_path, policy={"version": "2"})
        async with client(bumped, cookies={"cg_session": session}) as c:
            page = await c.get("/consentgate/policy?next=/news/4")
            token = html.unescape(CSRF_FIELD.findall(page.text)[0])
            refused = await c.post(
                "/consentgate/policy", data={"csrf_token": token, "next": "/news/4"}
            )
            accepted = await c.post(
                "/consentgate/policy",
                data={"csrf_token": token, "next": "/news/4", "accept_policy": "yes"},
            )
        return page, refused, accepted, bumped.config.policy.text_sha256

    page, refused, accepted, sha = run(scenario())
    assert page.status_code == 200
    assert "(version 2)" in page.text
    box = re.search(r'<input[^>]*name="accept_policy"[^>]*>', page.text)
    assert box is not None and "checked" not in box.group(0)
    assert refused.status_code == 400 and 'id="cg-accept_policy-error"' in refused.text
    assert accepted.status_code == 303 and accepted.headers["location"] == "/news/4"
    assert rows(tmp_path, "SELECT policy_version, method, policy_sha256 FROM acceptances") == [
        ("1", "registration", first.config.policy.text_sha256),
        ("2", "re-acceptance", sha),
    ]
    assert first.config.policy.text_sha256 != sha


def test_policy_page_current_acceptance_redirects_to_next(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await register(c)
            return await c.get("/consentgate/policy?next=/news/5")

    response = run(scenario())
    assert response.status_code == 303 and response.headers["location"] == "/news/5"


def test_policy_post_twice_records_one_row(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(make_gate(html_app(), tmp_path, policy={"version": "1"})) as c:
            await register(c)
            session = c.cookies["cg_session"]
        async with client(
            make_gate(html_app(), tmp_path, policy={"version": "2"}),
            cookies={"cg_session": session},
        ) as c:
            token = await form_token(c, "/consentgate/policy")
            data = {"csrf_token": token, "accept_policy": "yes"}
            for _ in range(2):
                assert (await c.post("/consentgate/policy", data=data)).status_code == 303

    run(scenario())
    assert rows(tmp_path, "SELECT method FROM acceptances") == [
        ("registration",),
        ("re-acceptance",),
    ]
