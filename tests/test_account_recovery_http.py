"""Verification and recovery through HTTP: registering tells nobody which addresses
have accounts, links from mails verify, sign in and reset, and a bad link gets a clear
400. The mail is read from the outbox of the real store (delivering it is the mail
sender's business, tested with a real SMTP server there)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run
from tests.mail_support import smtp_server
from tests.test_accounts_http import (
    PASSWORD,
    form_token,
    login,
    post_registration,
    rows,
    session_header,
)
from tests.test_mail_http import _smtp, _until
from tests.test_wall_http import ArticleApp, full_text_present, read
from tests.test_wall_http import wall_gate as article_gate

from consentgate import ConsentGate
from consentgate.accounts.links import Links

LINK = re.compile(r"https?://\S+?token=[A-Za-z0-9_.\-%]+")
NEW_PASSWORD = "a brand new passphrase"


def outbox(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(recipient, kind, plain text) of every queued message, oldest first."""
    return [
        (str(r), str(k), str(t))
        for r, k, t in rows(tmp_path, "SELECT recipient, kind, body_text FROM outbox ORDER BY id")
    ]


def link_in(tmp_path: Path, kind: str, recipient: str = "reader@example.com") -> str:
    """The path and query of the link in the newest ``kind`` mail to ``recipient``."""
    texts = [t for r, k, t in outbox(tmp_path) if k == kind and r == recipient]
    assert texts, f"no {kind} mail to {recipient} in {outbox(tmp_path)}"
    match = LINK.search(texts[-1])
    assert match, texts[-1]
    url = urlsplit(match.group(0))
    return f"{url.path}?{url.query}"


def token_of(path: str) -> str:
    return path.split("token=", 1)[1]


async def open_link(c: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """What a reader does with a link: open its page, press its button."""
    page = await c.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    action = re.search(r'<form class="cg-form" method="post" action="([^"]+)"', page.text)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert action and token
    data = {
        "csrf_token": await form_token(c, "/consentgate/login"),
        "token": html.unescape(token.group(1)),
        **fields,
    }
    return await c.post(html.unescape(action.group(1)), data=data)


async def post_form(c: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    data = {"csrf_token": await form_token(c, "/consentgate/login"), **fields}
    return await c.post(path, data=data)


async def signed_in_as_someone(c: httpx.AsyncClient) -> bool:
    # The registration form sends a signed-in reader on (303), shows itself to others.
    return (await c.get("/consentgate/register")).status_code == 303


# -- registration: the same answer, different mail ---------------------------------------


def test_recovery_register_new_and_taken_answer_identically_mails_differ(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            new = await post_registration(c, "reader@example.com")
        async with client(make_gate(html_app(), tmp_path)) as c:
            taken = await post_registration(c, "Reader@EXAMPLE.com", "another good passphrase")
        return new, taken

    new, taken = run(scenario())
    assert (new.status_code, new.text) == (taken.status_code, taken.text) == (200, new.text)
    assert "Look in your inbox" in new.text
    assert session_header(new) is None and session_header(taken) is None
    assert rows(tmp_path, "SELECT COUNT(*) FROM users") == [(1,)]
    mails = outbox(tmp_path)
    assert [(r, k) for r, k, _ in mails] == [
        ("reader@example.com", "verify_email"),
        ("reader@example.com", "address_taken"),
    ]
    assert "/consentgate/verify?token=" in mails[0][2]
    # The owner's notice carries no link that does anything but open the sign-in page.
    assert "token=" not in mails[1][2] and "http://news.test/consentgate/login" in mails[1][2]


def test_recovery_mail_in_the_readers_language(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(
            make_gate(html_app(), tmp_path, languages=["en", "de"]),
            headers={"accept-language": "de"},
        ) as c:
            assert (await post_registration(c)).status_code == 200

    run(scenario())
    [(subject, language)] = rows(tmp_path, "SELECT subject, language FROM outbox")
    assert language == "de" and "Bestätigen Sie Ihre E-Mail-Adresse" in subject


def test_recovery_verify_link_page_then_button_verifies_and_signs_in(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, bool]:
        async with client(gate) as c:
            await post_registration(c, next_url="/news/7")
            path = link_in(tmp_path, "verify_email")
            # A scanner's GETs use nothing up.
            prefetched = await c.get(path)
            await c.get(path)
            verified = await open_link(c, path)
            again = await c.post(
                "/consentgate/verify",
                data={
                    "csrf_token": await form_token(c, "/consentgate/login"),
                    "token": token_of(path),
                },
            )
            used = await c.get(path)  # the page of a used link offers no button
            assert used.status_code == 400 and "This link does not work" in used.text
            return prefetched, verified, again, await signed_in_as_someone(c)

    prefetched, verified, again, signed_in = run(scenario())
    assert prefetched.status_code == 200 and "Confirm my address" in prefetched.text
    assert verified.status_code == 303 and verified.headers["location"] == "/news/7"
    assert session_header(verified) is not None and signed_in
    [(verified_at,)] = rows(tmp_path, "SELECT email_verified_at FROM users")
    assert verified_at is not None
    assert again.status_code == 400
    assert "This link does not work" in again.text


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "",
        # A sign-in link's token posted to the verification: the wrong purpose.
        "SIGN_IN",
    ],
)
def test_recovery_bad_links_get_a_clear_400(tmp_path: Path, token: str) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(gate) as c:
            await post_registration(c)
            value = token
            if token == "SIGN_IN":
                await post_form(c, "/consentgate/login/link", email="reader@example.com")
                value = token_of(link_in(tmp_path, "magic_link"))
            page = await c.get(f"/consentgate/verify?token={value}")
            posted = await post_form(c, "/consentgate/verify", token=value)
            return page, posted

    for response in run(scenario()):
        assert response.status_code == 400
        assert "This link does not work" in response.text
        assert session_header(response) is None


def test_recovery_expired_link_is_refused(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"link_lifetime_minutes": 30})
    later = datetime.now(UTC) + timedelta(minutes=31)
    flows = gate.account_endpoints.flows

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            await post_registration(c)
            await post_form(c, "/consentgate/login/link", email="reader@example.com")
            path = link_in(tmp_path, "magic_link")
            # Half an hour later (the store and keys as before, only the clock moved on).
            flows.links = Links(gate.config.secret_keys, gate.accounts.storage, clock=lambda: later)
            return await c.get(path)

    response = run(scenario())
    assert response.status_code == 400 and "This link does not work" in response.text


# -- sign in by link ----------------------------------------------------------------------


def test_recovery_magic_link_same_answer_for_unknown_address_and_signs_in(
    tmp_path: Path,
) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(gate) as c:
            await post_registration(c)
        async with client(gate) as c:
            known = await post_form(
                c, "/consentgate/login/link", email="reader@example.com", next="/news/3"
            )
            unknown = await post_form(c, "/consentgate/login/link", email="nobody@example.com")
            signed_in = await open_link(c, link_in(tmp_path, "magic_link"))
            return known, unknown, signed_in

    known, unknown, signed_in = run(scenario())
    assert (known.status_code, known.text) == (unknown.status_code, unknown.text)
    assert known.status_code == 200 and "If an account exists" in known.text
    assert [k for r, k, _ in outbox(tmp_path) if r == "nobody@example.com"] == []
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/news/3"
    assert session_header(signed_in) is not None


def test_recovery_link_requests_limited_per_address_whether_it_exists(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, accounts={"mail_requests_per_hour": 2})

    async def scenario() -> dict[str, list[int]]:
        async with client(gate) as c:
            await post_registration(c)
            answers: dict[str, list[int]] = {}
            for email in ("reader@example.com", "nobody@example.com"):
                answers[email] = [
                    (await post_form(c, "/consentgate/password/forgot", email=email)).status_code
                    for _ in range(3)
                ]
            return answers

    answers = run(scenario())
    assert answers == {"reader@example.com": [200, 200, 429], "nobody@example.com": [200, 200, 429]}
    assert [k for _, k, _ in outbox(tmp_path)].count("password_reset") == 2


def test_recovery_link_requests_limited_per_network(tmp_path: Path) -> None:
    # Five addresses' worth per network (NETWORK_FAILURE_FACTOR): one client cannot walk
    # through many addresses either.
    gate = make_gate(html_app(), tmp_path, accounts={"mail_requests_per_hour": 1})

    async def scenario() -> list[int]:
        async with client(gate) as c:
            return [
                (
                    await post_form(c, "/consentgate/login/link", email=f"r{n}@example.com")
                ).status_code
                for n in range(6)
            ]

    assert run(scenario()) == [200] * 5 + [429]


# -- password reset -----------------------------------------------------------------------


def test_recovery_reset_sets_password_ends_sessions_signs_in_here(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> dict[str, Any]:
        async with client(gate) as phone:
            await post_registration(phone)
            assert (await login(phone)).status_code == 303
            assert await signed_in_as_someone(phone)
            async with client(gate) as laptop:
                await post_form(laptop, "/consentgate/password/forgot", email="reader@example.com")
                path = link_in(tmp_path, "password_reset")
                weak = await open_link(laptop, path, new_password="short")
                reset = await open_link(laptop, path, new_password=NEW_PASSWORD)
                reused = await post_form(
                    laptop,
                    "/consentgate/password/reset",
                    token=token_of(path),
                    new_password="yet another passphrase",
                )
                here = await signed_in_as_someone(laptop)
            gate.sessions.forget_cached()
            there = await signed_in_as_someone(phone)
        async with client(gate) as c:
            old = await login(c, password=PASSWORD)
            new = await login(c, password=NEW_PASSWORD)
        return {
            "weak": weak,
            "reset": reset,
            "reused": reused,
            "here": here,
            "there": there,
            "old": old,
            "new": new,
        }

    seen = run(scenario())
    # A weak password is refused without using the link up.
    assert seen["weak"].status_code == 400 and "at least 10 characters" in seen["weak"].text
    assert seen["reset"].status_code == 303 and session_header(seen["reset"]) is not None
    assert seen["here"] is True and seen["there"] is False
    assert seen["reused"].status_code == 400
    assert seen["old"].status_code == 400 and seen["new"].status_code == 303


def test_recovery_reset_link_dies_when_the_password_changes_meanwhile(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            await post_registration(c)
            await post_form(c, "/consentgate/password/forgot", email="reader@example.com")
            path = link_in(tmp_path, "password_reset")
            await login(c)
            changed = await post_form(
                c,
                "/consentgate/password",
                current_password=PASSWORD,
                new_password=NEW_PASSWORD,
                next="/",
            )
            assert changed.status_code == 303
            return await c.get(path)

    assert run(scenario()).status_code == 400


# -- verification and the wall ---------------------------------------------------------


def wall_gate(tmp_path: Path, **accounts: Any) -> ConsentGate:
    """/premium/* is for registered readers only."""
    return article_gate(ArticleApp(), tmp_path, accounts=accounts)


def test_recovery_unverified_reader_reads_during_the_grace_period(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(tmp_path)) as c:
            await post_registration(c)
            await login(c)
            return await read(c, "/premium/alpha")

    assert full_text_present(run(scenario()).text, "alpha")


@pytest.mark.parametrize(
    "accounts", [{"verification": "required"}, {"verification_grace_hours": 0}]
)
def test_recovery_unverified_reader_after_the_grace_sees_verify_wall(
    tmp_path: Path, accounts: dict[str, Any]
) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(wall_gate(tmp_path, **accounts)) as c:
            await post_registration(c, next_url="/premium/alpha")
            await login(c)
            walled = await read(c, "/premium/alpha")
            resend = await c.get("/consentgate/verify/resend?next=/premium/alpha")
            verified = await open_link(c, link_in(tmp_path, "verify_email"))
            return walled, resend, await read(c, verified.headers["location"])

    walled, resend, after = run(scenario())
    assert not full_text_present(walled.text, "alpha")
    assert 'data-cg-reason="verification_needed"' in walled.text
    assert "Please confirm your e-mail address" in walled.text
    assert 'href="/consentgate/verify/resend?next=/premium/alpha"' in walled.text
    assert "cg-cta__register" not in walled.text
    assert resend.status_code == 200 and "Send a new confirmation link" in resend.text
    assert full_text_present(after.text, "alpha")


def test_recovery_resend_sends_a_new_verification_link(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(tmp_path, verification="required")) as c:
            await post_registration(c)
            await login(c)
            return await post_form(c, "/consentgate/verify/resend", next="/premium/alpha")

    response = run(scenario())
    assert response.status_code == 200 and "new confirmation link" in response.text
    assert [k for _, k, _ in outbox(tmp_path)] == ["verify_email", "verify_email"]


def test_recovery_verification_off_lets_unverified_readers_through(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(tmp_path, verification="off")) as c:
            await post_registration(c)
            await login(c)
            return await read(c, "/premium/alpha")

    assert full_text_present(run(scenario()).text, "alpha")


def test_recovery_public_url_builds_the_links(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, public_url="https://news.example")

    async def scenario() -> None:
        async with client(gate, headers={"host": "evil.test"}) as c:
            await post_registration(c)

    run(scenario())
    [(_, _, text)] = outbox(tmp_path)
    assert "https://news.example/consentgate/verify?token=" in text and "evil.test" not in text


# -- through a real SMTP server ----------------------------------------------------------


def test_recovery_mails_reach_a_real_smtp_server_and_their_links_work(tmp_path: Path) -> None:
    """Registration's verification and a password reset, each woken out of the outbox
    to aiosmtpd at once; the links in the messages as received verify and reset."""

    def link_received(messages: list[Any], subject: str) -> str:
        [message] = [m for m in messages if subject in str(m["Subject"])]
        text = next(
            part.get_content()
            for part in message.iter_parts()
            if part.get_content_type() == "text/plain"
        )
        [url] = [line for line in text.splitlines() if line.startswith("https://news.test/")]
        return url.removeprefix("https://news.test")

    async def scenario(port: int) -> dict[str, Any]:
        site = make_gate(html_app(), tmp_path, mail=_smtp(port), public_url="https://news.test")
        async with client(site) as phone:
            await post_registration(phone, next_url="/news/5")
            await _until(lambda: len(server.inbox.messages) == 1, within=5)
            verified = await open_link(
                phone, link_received(server.inbox.messages, "Confirm your e-mail address")
            )
            async with client(site) as laptop:
                await post_form(laptop, "/consentgate/password/forgot", email="reader@example.com")
                await _until(lambda: len(server.inbox.messages) == 2, within=5)
                path = link_received(server.inbox.messages, "Choose a new password")
                reset = await open_link(laptop, path, new_password=NEW_PASSWORD)
            site.sessions.forget_cached()
            phone_after = await signed_in_as_someone(phone)
        assert site.mail_sender is not None
        await site.mail_sender.stop()
        return {"verified": verified, "reset": reset, "phone_after": phone_after}

    with smtp_server() as server:
        seen = run(scenario(server.port))
    assert seen["verified"].status_code == 303 and seen["verified"].headers["location"] == "/news/5"
    assert seen["reset"].status_code == 303 and session_header(seen["reset"]) is not None
    assert seen["phone_after"] is False
    assert [to for _, to in server.inbox.envelopes] == [["reader@example.com"]] * 2
    # Sent mail keeps no text in the outbox: its links stay secret.
    assert rows(tmp_path, "SELECT status, body_text FROM outbox") == [("sent", ""), ("sent", "")]
