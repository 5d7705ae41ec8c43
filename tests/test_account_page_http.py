"""The account page through HTTP: what it shows, signing out everywhere, changing the
password and the address, the data export, and deleting the account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import client, decide, html_app, make_gate, run
from tests.test_account_recovery_http import (
    NEW_PASSWORD,
    link_in,
    open_link,
    outbox,
    post_form,
    signed_in_as_someone,
)
from tests.test_accounts_http import PASSWORD, login, register, rows, session_header
from tests.test_newsletters_http import gate as newsletters_gate
from tests.test_newsletters_http import register as register_with_lists

from consentgate import ConsentGate


def gate(tmp_path: Path) -> ConsentGate:
    return make_gate(html_app(), tmp_path, policy={"version": "2026-02"})


def test_account_page_needs_sign_in(tmp_path: Path) -> None:
    async def scenario() -> list[httpx.Response]:
        async with client(gate(tmp_path)) as c:
            return [
                await c.get(path)
                for path in ("/consentgate/account", "/consentgate/account/delete")
            ]

    for response in run(scenario()):
        assert response.status_code == 303
        assert response.headers["location"].startswith("/consentgate/login?next=")


def test_account_page_shows_who_policy_and_consent_history(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(gate(tmp_path)) as c:
            await register(c, email="page@example.com")
            await decide(c, "accept_all")
            return await c.get("/consentgate/account", headers={"accept": "text/html"})

    page = run(scenario())
    body = page.text
    assert page.status_code == 200 and "private" in page.headers["cache-control"]
    assert "You are signed in as page@example.com." in body
    assert "Your address is not confirmed yet." in body
    assert "You accepted version 2026-02 of the privacy policy on" in body
    assert "<td>grant</td>" in body.split('class="cg-history"', 1)[1]
    assert "You do not receive any newsletter." in body
    for action in ("/logout/everywhere", "/password", "/account/email", "/account/export"):
        assert f'action="/consentgate{action}"' in body
    assert 'href="/consentgate/account/delete"' in body


def test_account_page_sign_out_everywhere_ends_every_session(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def scenario() -> tuple[bool, bool, httpx.Response]:
        async with client(site) as phone, client(site) as laptop:
            await register(phone)
            await login(laptop)
            out = await post_form(laptop, "/consentgate/logout/everywhere", next="/")
            site.sessions.forget_cached()
            return await signed_in_as_someone(phone), await signed_in_as_someone(laptop), out

    phone, laptop, out = run(scenario())
    assert (phone, laptop) == (False, False)
    cleared = session_header(out)
    assert cleared is not None and "Max-Age=0" in cleared
    assert rows(tmp_path, "SELECT COUNT(*) FROM sessions") == [(0,)]


def test_account_page_change_password_keeps_this_session_only(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def scenario() -> tuple[httpx.Response, bool, bool]:
        async with client(site) as phone, client(site) as laptop:
            await register(phone)
            await login(laptop)
            changed = await post_form(
                laptop,
                "/consentgate/password",
                current_password=PASSWORD,
                new_password=NEW_PASSWORD,
                next="/consentgate/account",
            )
            site.sessions.forget_cached()
            return changed, await signed_in_as_someone(phone), await signed_in_as_someone(laptop)

    changed, phone, laptop = run(scenario())
    assert changed.status_code == 303 and changed.headers["location"] == "/consentgate/account"
    assert (phone, laptop) == (False, True)


def test_account_page_change_email_by_link_to_new_address_notice_to_old(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def scenario() -> dict[str, httpx.Response]:
        async with client(site) as c:
            await register(c, email="old@example.com")
            wrong = await post_form(
                c, "/consentgate/account/email", new_email="new@example.com", password="nope"
            )
            asked = await post_form(
                c, "/consentgate/account/email", new_email="new@example.com", password=PASSWORD
            )
            confirmed = await open_link(c, link_in(tmp_path, "email_change", "new@example.com"))
        async with client(site) as c:
            new = await login(c, email="new@example.com")
            old = await login(c, email="old@example.com")
        return {"wrong": wrong, "asked": asked, "confirmed": confirmed, "new": new, "old": old}

    seen = run(scenario())
    assert seen["wrong"].status_code == 409 and "The password is not right." in seen["wrong"].text
    assert seen["asked"].status_code == 200 and "confirmation link" in seen["asked"].text
    kinds = [(r, k) for r, k, _ in outbox(tmp_path)]
    assert ("new@example.com", "email_change") in kinds
    assert ("old@example.com", "email_change_notice") in kinds
    [notice] = [t for r, k, t in outbox(tmp_path) if k == "email_change_notice"]
    assert "new@example.com" in notice and "token=" not in notice
    assert seen["confirmed"].status_code == 303
    assert seen["confirmed"].headers["location"] == "/consentgate/account"
    assert seen["new"].status_code == 303 and seen["old"].status_code == 400
    assert rows(tmp_path, "SELECT email FROM users") == [("new@example.com",)]


def test_account_page_change_to_the_same_address_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    site = gate(tmp_path)

    async def scenario() -> httpx.Response:
        async with client(site) as c:
            await register(c, email="mine@example.com")
            return await post_form(
                c, "/consentgate/account/email", new_email=" Mine@Example.com", password=PASSWORD
            )

    response = run(scenario())
    assert response.status_code == 409
    assert "This is already the address of your account." in response.text
    assert [k for _, k, _ in outbox(tmp_path)] == ["verify_email"], "no change mail, no notice"


def test_account_page_change_to_a_taken_address_answers_the_same_sends_no_link(
    tmp_path: Path,
) -> None:
    site = gate(tmp_path)

    async def scenario() -> httpx.Response:
        async with client(site) as other:
            await register(other, email="taken@example.com")
        async with client(site) as c:
            await register(c, email="mine@example.com")
            return await post_form(
                c, "/consentgate/account/email", new_email="taken@example.com", password=PASSWORD
            )

    response = run(scenario())
    assert response.status_code == 200 and "confirmation link" in response.text
    assert [k for r, k, _ in outbox(tmp_path) if r == "taken@example.com"] == ["verify_email"]


def test_account_page_export_is_a_json_attachment_of_everything(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(gate(tmp_path)) as c:
            await register(c, email="export@example.com")
            await decide(c, "accept_all")
            page = await c.get("/consentgate/account/export")
            exported = await post_form(c, "/consentgate/account/export")
            forged = await c.post("/consentgate/account/export", data={})
            return page, exported, forged

    page, exported, forged = run(scenario())
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert exported.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in exported.headers["cache-control"]
    data: dict[str, Any] = json.loads(exported.text)
    assert data["account"]["email"] == "export@example.com"
    assert data["account"]["email_verified_at"] is None
    # The hash is described, never shown.
    [hash_] = rows(tmp_path, "SELECT password_hash FROM users")
    assert hash_[0] not in exported.text and "scrypt hash" in data["account"]["password"]
    assert [a["purpose"] for a in data["acceptances"]] == ["privacy_policy"]
    assert [c["action"] for c in data["consents"]] == ["grant"]
    assert data["newsletter_subscriptions"] == []
    # The sign-in's session, by its times; its hash (which names it) is not in the file.
    [session] = data["sessions"]
    assert set(session) == {"created_at", "expires_at"}
    assert session["created_at"] < session["expires_at"]
    [(id_hash,)] = rows(tmp_path, "SELECT id_hash FROM sessions")
    assert id_hash not in exported.text
    assert forged.status_code == 403


def test_account_page_export_carries_newsletter_rows_and_every_session(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(newsletters_gate(tmp_path)) as c:
            await register_with_lists(c, ["week-in-review"])  # signs in once
            await login(c, "reader@example.com", PASSWORD)  # a second session
            return await post_form(c, "/consentgate/account/export")

    exported = run(scenario())
    assert exported.status_code == 200
    data: dict[str, Any] = json.loads(exported.text)
    [row] = data["newsletter_subscriptions"]
    assert (row["list_id"], row["action"], row["method"]) == (
        "week-in-review",
        "requested",
        "registration",
    )
    assert row["recorded_at"].endswith("Z")
    sessions = data["sessions"]
    assert len(sessions) == 2
    assert sessions[0]["created_at"] <= sessions[1]["created_at"]  # oldest first
    assert all(set(s) == {"created_at", "expires_at"} for s in sessions)


def test_account_page_delete_needs_password_and_box_then_erases(tmp_path: Path) -> None:
    site = gate(tmp_path)

    async def scenario() -> dict[str, Any]:
        async with client(site) as c:
            await register(c, email="gone@example.com")
            await decide(c, "accept_all")
            form = await c.get("/consentgate/account/delete")
            wrong = await post_form(
                c, "/consentgate/account/delete", password="nope", confirm="yes"
            )
            unticked = await post_form(c, "/consentgate/account/delete", password=PASSWORD)
            deleted = await post_form(
                c, "/consentgate/account/delete", password=PASSWORD, confirm="yes"
            )
            after = await signed_in_as_someone(c)
        async with client(site) as c:
            again = await login(c, email="gone@example.com")
        return {
            "form": form,
            "wrong": wrong,
            "unticked": unticked,
            "deleted": deleted,
            "after": after,
            "again": again,
        }

    seen = run(scenario())
    assert seen["form"].status_code == 200 and 'name="confirm"' in seen["form"].text
    assert "checked" not in seen["form"].text.split('name="confirm"', 1)[1].split(">", 1)[0]
    assert seen["wrong"].status_code == 400 and "The password is not right." in seen["wrong"].text
    assert seen["unticked"].status_code == 400 and "Tick the box" in seen["unticked"].text
    assert seen["deleted"].status_code == 200 and "Your account is deleted" in seen["deleted"].text
    cleared = session_header(seen["deleted"])
    assert cleared is not None and "Max-Age=0" in cleared
    assert seen["after"] is False and seen["again"].status_code == 400
    # The same erasure as `consentgate forget`: no account, no sessions, and the kept
    # proof of consent without the address, the IP HMAC or the user agent.
    assert rows(tmp_path, "SELECT COUNT(*) FROM users") == [(0,)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM sessions") == [(0,)]
    # Its verification mail, still queued, goes with it.
    assert rows(tmp_path, "SELECT COUNT(*) FROM outbox") == [(0,)]
    kept = rows(tmp_path, "SELECT ip_hmac, user_agent FROM acceptances")
    assert kept and all(row == (None, None) for row in kept)
