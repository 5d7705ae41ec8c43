"""Newsletters through HTTP: choices at registration, double opt-in by the mail's link,
RFC 8058 one-click unsubscription, the unsubscribe page, the account page's buttons.

The confirmation mail is read from the real SQLite outbox (the sender is not the point
here; tests/test_mail_* deliver to a real SMTP server)."""

from __future__ import annotations

import html
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from tests.conftest import client, html_app, make_gate, run

from consentgate.accounts.newsletters import ListState
from consentgate.middleware import ConsentGate
from consentgate.storage import User
from consentgate.web.newsletter_templates import render_newsletter_section

PASSWORD = "correct horse battery"
REGISTER = "/consentgate/register"
# A page with a CSRF token for a signed-in reader too (register sends them on).
SETTINGS = "/consentgate/settings"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
LISTS = [
    {
        "id": "morning-brief",
        "name": {"en": "The Morning Brief", "de": "Das Morgenbriefing"},
        "description": "The five stories to know before work.",
        "frequency": {"en": "every weekday", "de": "werktags"},
    },
    {
        "id": "week-in-review",
        "name": "The Week in Review",
        "description": "The week's reporting, with the long reads.",
        "frequency": "Saturdays",
        "unsubscribe_mailto": "unsubscribe@news.test",
    },
]


def gate(tmp_path: Path) -> ConsentGate:
    return make_gate(html_app(), tmp_path, newsletters=LISTS, public_url="https://news.test")


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(tmp_path / "ledger.db")
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def ledger(tmp_path: Path) -> list[tuple[Any, ...]]:
    return rows(
        tmp_path,
        "SELECT list_id, action, method, text_shown FROM subscriptions ORDER BY id",
    )


def outbox(tmp_path: Path) -> list[tuple[str, str, str, str]]:
    return [
        (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
        for r in rows(
            tmp_path,
            # The newsletters' mail (registering also sends the address's verification).
            "SELECT recipient, kind, subject, body_text FROM outbox"
            " WHERE kind NOT IN ('verify_email', 'address_taken') ORDER BY id",
        )
    ]


def link_in(text: str) -> str:
    found = re.search(r"^https://news\.test(/\S+)$", text, re.MULTILINE)
    assert found, text
    return found.group(1)


async def form_token(c: httpx.AsyncClient, path: str) -> str:
    page = await c.get(path)
    match = CSRF_FIELD.search(page.text)
    assert match, f"{path} carries no form"
    return html.unescape(match.group(1))


async def register(
    c: httpx.AsyncClient, lists: list[str], email: str = "reader@example.com"
) -> httpx.Response:
    data: dict[str, Any] = {
        "csrf_token": await form_token(c, REGISTER),
        "email": email,
        "password": PASSWORD,
        "accept_policy": "yes",
        "next": "/news/1",
        "newsletters": lists,
    }
    registered = await c.post("/consentgate/register", data=data)
    assert registered.status_code == 200, registered.text  # "look in your inbox"
    # Unverified, the reader signs in with the password (the grace period).
    login = {
        "csrf_token": await form_token(c, "/consentgate/login"),
        "email": email,
        "password": PASSWORD,
        "next": "/news/1",
    }
    return await c.post("/consentgate/login", data=login)


async def confirm(c: httpx.AsyncClient, path: str) -> httpx.Response:
    page = await c.get(path)
    assert page.status_code == 200, page.text
    token = parse_qs(urlsplit(path).query)["token"][0]
    csrf = html.unescape(CSRF_FIELD.search(page.text).group(1))  # type: ignore[union-attr]
    return await c.post(
        "/consentgate/newsletters/confirm", data={"csrf_token": csrf, "token": token}
    )


def unsubscribe_url(app: ConsentGate, email: str, list_id: str) -> str:
    user_id = rows(app_path(app), f"SELECT id FROM users WHERE email = '{email}'")[0][0]
    return app.newsletters.unsubscribe_url(str(user_id), email, list_id)


def app_path(app: ConsentGate) -> Path:
    return Path(app.config.database_url.removeprefix("sqlite:///")).parent


# -- registration and double opt-in ------------------------------------------------------


def test_newsletters_register_form_one_unticked_box_per_list(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(gate(tmp_path)) as c:
            return await c.get("/consentgate/register", headers={"accept-language": "de"})

    body = run(scenario()).text
    boxes = re.findall(r'<input type="checkbox" name="newsletters"[^>]*>', body)
    assert boxes == [
        '<input type="checkbox" name="newsletters" value="morning-brief">',
        '<input type="checkbox" name="newsletters" value="week-in-review">',
    ]
    # Each in the reader's language where the operator wrote one, English otherwise.
    assert "Das Morgenbriefing" in body and "werktags" in body
    assert "The Week in Review" in body and "Saturdays" in body
    assert "Newsletter (freiwillig)" in body


def test_newsletters_register_with_two_ticked_requests_both_and_confirms(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[int]]:
        async with client(gate(tmp_path)) as c:
            response = await register(c, ["morning-brief", "week-in-review"])
            assert response.status_code == 303
            requested = ledger(tmp_path)
            mails = outbox(tmp_path)
            statuses = []
            for _, _, _, text in mails:
                statuses.append((await confirm(c, link_in(text))).status_code)
            return requested, mails, statuses

    requested, mails, statuses = run(scenario())
    assert requested == [
        (
            "morning-brief",
            "requested",
            "registration",
            "The Morning Brief\nThe five stories to know before work.\nevery weekday",
        ),
        (
            "week-in-review",
            "requested",
            "registration",
            "The Week in Review\nThe week's reporting, with the long reads.\nSaturdays",
        ),
    ]
    assert [(m[0], m[1]) for m in mails] == [("reader@example.com", "newsletter_confirm")] * 2
    assert "The Morning Brief" in mails[0][2] and "The Week in Review" in mails[1][2]
    assert statuses == [200, 200]
    assert [r[:3] for r in ledger(tmp_path)[2:]] == [
        ("morning-brief", "confirmed", "email_link"),
        ("week-in-review", "confirmed", "email_link"),
    ]


def test_newsletters_register_nothing_ticked_records_nothing(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with client(gate(tmp_path)) as c:
            return (await register(c, [])).status_code

    assert run(scenario()) == 303
    assert ledger(tmp_path) == [] and outbox(tmp_path) == []


def test_newsletters_register_unknown_list_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with client(gate(tmp_path)) as c:
            return (await register(c, ["no-such-list", "week-in-review"])).status_code

    assert run(scenario()) == 303
    assert [r[:2] for r in ledger(tmp_path)] == [("week-in-review", "requested")]


def test_newsletters_confirm_link_get_changes_nothing_and_works_once(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[Any], int, int]:
        async with client(gate(tmp_path)) as c:
            await register(c, ["week-in-review"])
            path = link_in(outbox(tmp_path)[0][3])
            get = await c.get(path)  # a mail scanner's prefetch
            after_get = ledger(tmp_path)
            first = await confirm(c, path)
            token = parse_qs(urlsplit(path).query)["token"][0]
            csrf = await form_token(c, SETTINGS)
            again = await c.post(
                "/consentgate/newsletters/confirm", data={"csrf_token": csrf, "token": token}
            )
            return get.status_code, after_get, first.status_code, again.status_code

    get, after_get, first, again = run(scenario())
    assert get == 200 and [r[1] for r in after_get] == ["requested"]
    assert first == 200
    assert again == 400
    assert [r[1] for r in ledger(tmp_path)] == ["requested", "confirmed"]


def test_newsletters_confirm_forged_token_is_refused(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        async with client(gate(tmp_path)) as c:
            await register(c, ["week-in-review"])
            path = link_in(outbox(tmp_path)[0][3])
            forged = path[:-6] + ("AAAAAA" if not path.endswith("AAAAAA") else "BBBBBB")
            get = await c.get(forged)
            csrf = await form_token(c, SETTINGS)
            post = await c.post(
                "/consentgate/newsletters/confirm", data={"csrf_token": csrf, "token": "x.y.z"}
            )
            return get.status_code, post.status_code

    assert run(scenario()) == (400, 400)
    assert [r[1] for r in ledger(tmp_path)] == ["requested"]


def test_newsletters_second_request_while_pending_resends(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(gate(tmp_path)) as c:
            await register(c, ["week-in-review"])
            csrf = await form_token(c, SETTINGS)
            data = {"csrf_token": csrf, "list": "week-in-review"}
            resent = await c.post("/consentgate/newsletters/subscribe", data=data)
            assert resent.status_code == 303
            await confirm(c, link_in(outbox(tmp_path)[1][3]))
            # Subscribed: asking again writes nothing and sends nothing.
            await c.post("/consentgate/newsletters/subscribe", data=data)

    run(scenario())
    assert [r[1:3] for r in ledger(tmp_path)] == [
        ("requested", "registration"),
        ("requested", "account"),
        ("confirmed", "email_link"),
    ]
    assert len(outbox(tmp_path)) == 2


# -- unsubscribing -------------------------------------------------------------------------


def test_newsletters_one_click_from_another_origin_unsubscribes_idempotently(
    tmp_path: Path,
) -> None:
    app = gate(tmp_path)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(app) as c:
            await register(c, ["week-in-review"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))
        url = unsubscribe_url(app, "reader@example.com", "week-in-review")
        path = url.removeprefix("https://news.test")
        # The mail provider: no cookies, no CSRF token, its own origin.
        async with client(app) as provider:
            headers = {"origin": "https://mail.example", "sec-fetch-site": "cross-site"}
            body = {"List-Unsubscribe": "One-Click"}
            first = await provider.post(path, data=body, headers=headers)
            again = await provider.post(path, data=body, headers=headers)
            return first, again

    first, again = run(scenario())
    assert first.status_code == 200 and again.status_code == 200
    assert "set-cookie" not in first.headers and "location" not in first.headers
    assert [r[1:3] for r in ledger(tmp_path)] == [
        ("requested", "registration"),
        ("confirmed", "email_link"),
        ("unsubscribed", "one_click"),
    ]


def test_newsletters_one_click_as_multipart_form_data(tmp_path: Path) -> None:
    app = gate(tmp_path)

    async def scenario() -> int:
        async with client(app) as c:
            await register(c, ["week-in-review"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))
        path = unsubscribe_url(app, "reader@example.com", "week-in-review")
        async with client(app) as provider:
            response = await provider.post(
                path.removeprefix("https://news.test"),
                files={"List-Unsubscribe": (None, "One-Click")},
            )
            return response.status_code

    assert run(scenario()) == 200
    assert ledger(tmp_path)[-1][1:3] == ("unsubscribed", "one_click")


def test_newsletters_one_click_without_the_body_or_with_a_bad_token_refused(
    tmp_path: Path,
) -> None:
    app = gate(tmp_path)

    async def scenario() -> tuple[int, int, int]:
        async with client(app) as c:
            await register(c, ["week-in-review"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))
        path = unsubscribe_url(app, "reader@example.com", "week-in-review")
        path = path.removeprefix("https://news.test")
        async with client(app) as provider:
            empty = await provider.post(path, data={"other": "x"})
            forged = await provider.post(
                path[:-6] + "AAAAAA", data={"List-Unsubscribe": "One-Click"}
            )
            wrong_purpose = await provider.post(
                "/consentgate/newsletters/unsubscribe?token="
                + parse_qs(urlsplit(link_in(outbox(tmp_path)[0][3])).query)["token"][0],
                data={"List-Unsubscribe": "One-Click"},
            )
            return empty.status_code, forged.status_code, wrong_purpose.status_code

    assert run(scenario()) == (400, 400, 400)
    assert ledger(tmp_path)[-1][1] == "confirmed"


def test_newsletters_unsubscribe_link_of_another_user_cannot_serve_this_one(
    tmp_path: Path,
) -> None:
    """A link names its reader; it stops working once the address changes hands."""
    app = gate(tmp_path)

    async def scenario() -> int:
        async with client(app) as c:
            await register(c, ["week-in-review"])
        # A link made for this user id but another address: bound to the address.
        user_id = rows(tmp_path, "SELECT id FROM users")[0][0]
        url = app.newsletters.unsubscribe_url(str(user_id), "other@example.com", "week-in-review")
        async with client(app) as provider:
            response = await provider.post(
                url.removeprefix("https://news.test"), data={"List-Unsubscribe": "One-Click"}
            )
            return response.status_code

    assert run(scenario()) == 400
    assert [r[1] for r in ledger(tmp_path)] == ["requested"]


def test_newsletters_unsubscribe_get_shows_a_button_and_changes_nothing(tmp_path: Path) -> None:
    app = gate(tmp_path)

    async def scenario() -> tuple[httpx.Response, list[Any], httpx.Response]:
        async with client(app) as c:
            await register(c, ["week-in-review"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))
        path = unsubscribe_url(app, "reader@example.com", "week-in-review")
        path = path.removeprefix("https://news.test")
        async with client(app) as reader:
            page = await reader.get(path)
            unchanged = ledger(tmp_path)
            action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
            done = await reader.post(action, data={"via": "page"})
            return page, unchanged, done

    page, unchanged, done = run(scenario())
    assert page.status_code == 200 and "<button" in page.text
    assert "The Week in Review" in page.text
    assert [r[1] for r in unchanged] == ["requested", "confirmed"]
    assert done.status_code == 200 and "The Week in Review" in done.text
    assert ledger(tmp_path)[-1][1:3] == ("unsubscribed", "email_link")


def test_newsletters_account_withdraw_needs_csrf_and_a_session(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        async with client(gate(tmp_path)) as c:
            await register(c, ["week-in-review"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))
            no_token = await c.post(
                "/consentgate/newsletters/withdraw", data={"list": "week-in-review"}
            )
            csrf = await form_token(c, SETTINGS)
            data = {"csrf_token": csrf, "list": "week-in-review"}
            withdrawn = await c.post("/consentgate/newsletters/withdraw", data=data)
        async with client(gate(tmp_path)) as anonymous:
            csrf = await form_token(anonymous, SETTINGS)
            data = {"csrf_token": csrf, "list": "week-in-review"}
            signed_out = await anonymous.post("/consentgate/newsletters/withdraw", data=data)
            return no_token.status_code, withdrawn.status_code, signed_out.status_code

    no_token, withdrawn, signed_out = run(scenario())
    assert no_token == 403 and withdrawn == 303
    assert signed_out == 303  # to the sign-in page; nothing recorded
    assert [r[1:3] for r in ledger(tmp_path)] == [
        ("requested", "registration"),
        ("confirmed", "email_link"),
        ("unsubscribed", "account"),
    ]


# -- the headers of a newsletter mail -----------------------------------------------------


def test_newsletters_mail_headers_as_rfc_8058_gives_them(tmp_path: Path) -> None:
    app = gate(tmp_path)
    user = User(email="reader@example.com", password_hash="x", id="u1")
    brief, week = app.config.newsletters
    headers = dict(app.newsletters.mail_headers(brief, user))
    # One HTTPS URI in angle brackets, and the one-click signal, verbatim (section 3.1).
    assert re.fullmatch(
        r"<https://news\.test/consentgate/newsletters/unsubscribe\?token=[^<>\s,]+>",
        headers["List-Unsubscribe"],
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"] == "<morning-brief.news.test>"
    # The mailto only where the operator configured one.
    with_mailto = dict(app.newsletters.mail_headers(week, user))["List-Unsubscribe"]
    https, mailto = with_mailto.split(", ")
    assert https.startswith("<https://") and mailto == (
        "<mailto:unsubscribe@news.test?subject=unsubscribe%20week-in-review>"
    )


def test_newsletters_words_of_record_and_mail_in_the_readers_language(tmp_path: Path) -> None:
    async def scenario() -> None:
        headers = {"accept-language": "de"}
        async with client(gate(tmp_path), headers=headers) as c:
            await register(c, ["morning-brief"])
            await confirm(c, link_in(outbox(tmp_path)[0][3]))

    run(scenario())
    ((_, kind, subject, text),) = outbox(tmp_path)
    assert kind == "newsletter_confirm"
    assert subject == "Bitte bestätigen: Das Morgenbriefing"
    assert "Das Morgenbriefing (werktags)" in text
    # The German name and frequency as shown; the description has no German text, so
    # the English one was shown, and is recorded.
    german = "Das Morgenbriefing\nThe five stories to know before work.\nwerktags"
    assert [(r[1], r[3]) for r in ledger(tmp_path)] == [
        ("requested", german),
        ("confirmed", german),
    ]


def test_newsletters_account_section_shows_each_state_with_its_button(tmp_path: Path) -> None:
    app = gate(tmp_path)
    brief, week = app.config.newsletters
    state = [ListState(brief, "confirmed"), ListState(week, "requested")]
    section = render_newsletter_section(state, "en", "tok&en", "/consentgate")
    items = section.split("<li")[1:]
    assert "Subscribed" in items[0] and 'action="/consentgate/newsletters/withdraw"' in items[0]
    assert "/newsletters/subscribe" not in items[0]
    assert "Waiting for your confirmation" in items[1]
    assert 'action="/consentgate/newsletters/subscribe"' in items[1]  # send it again
    assert 'action="/consentgate/newsletters/withdraw"' in items[1]  # or call it off
    assert section.count('name="csrf_token" value="tok&amp;en"') == 3
    assert (
        render_newsletter_section([ListState(week, "unsubscribed")], "en", "t", "/cg").count(
            "Subscribe</button>"
        )
        == 1
    )


def test_newsletters_one_click_storage_down_is_503_so_the_provider_retries(
    tmp_path: Path,
) -> None:
    # The storage cannot be read at all (the file is not a database): a real failure.
    garbage = tmp_path / "broken.db"
    garbage.write_bytes(b"not a database, " * 512)
    broken = make_gate(
        html_app(),
        tmp_path,
        newsletters=LISTS,
        public_url="https://news.test",
        database_url=f"sqlite:///{garbage}",
    )
    url = broken.newsletters.unsubscribe_url("u1", "reader@example.com", "week-in-review")

    async def scenario() -> httpx.Response:
        async with client(broken) as provider:
            return await provider.post(
                url.removeprefix("https://news.test"), data={"List-Unsubscribe": "One-Click"}
            )

    response = run(scenario())
    assert response.status_code == 503
    assert "location" not in response.headers
