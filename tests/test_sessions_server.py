"""Server-side sessions: the cookie names a stored session, and ending it is real.

Oracle for "signed in": the registration form redirects a signed-in reader (303) and
shows the form to anyone else (200); the dashboard answers 200 or 401.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run
from tests.services import fresh_postgres_schema, require_postgres
from tests.test_accounts_http import PASSWORD, form_token, login, register
from tests.test_dashboard import ADMIN, admin_gate
from tests.test_dashboard import login as admin_login

from consentgate import ConsentGate
from consentgate.operator.dashboard import ADMIN_COOKIE
from consentgate.storage import SessionRecord, SQLiteStorage, Storage, storage_from_url

NEW_PASSWORD = "a completely different one"


async def signed_in(c: httpx.AsyncClient) -> bool:
    status = (await c.get("/consentgate/register")).status_code
    assert status in (200, 303)
    return status == 303


async def post(c: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    token = await form_token(c, "/consentgate/login")
    return await c.post(path, data={"csrf_token": token, "next": "/", **fields})


def browser(gate: ConsentGate, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    return client(gate, cookies=cookies)


def copy(c: httpx.AsyncClient) -> httpx.Cookies:
    return httpx.Cookies({cookie.name: cookie.value for cookie in c.cookies.jar})


def test_sessions_server_logout_ends_a_copied_cookie(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[bool, bool, bool]:
        async with browser(gate) as c:
            await register(c)
            stolen = copy(c)
            before = await signed_in(c)
            assert (await post(c, "/consentgate/logout")).status_code == 303
        async with browser(gate, stolen) as thief:
            return before, await signed_in(thief), "cg_session" in stolen

    before, thief_signed_in, had_cookie = run(scenario())
    assert before and had_cookie
    assert not thief_signed_in


def test_sessions_server_sign_out_everywhere_ends_every_browser(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> list[bool]:
        async with browser(gate) as phone, browser(gate) as laptop:
            await register(phone)
            assert (await login(laptop)).status_code == 303
            both = [await signed_in(phone), await signed_in(laptop)]
            answer = await post(laptop, "/consentgate/logout/everywhere")
            assert answer.status_code == 303
            return [*both, await signed_in(phone), await signed_in(laptop)]

    assert run(scenario()) == [True, True, False, False]


def test_sessions_server_password_change_ends_the_others_keeps_this_one(
    tmp_path: Path,
) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[list[bool], int, int, int, int]:
        async with browser(gate) as mine, browser(gate) as other:
            await register(mine)
            assert (await login(other)).status_code == 303
            wrong = await post(
                mine,
                "/consentgate/password",
                current_password="not it at all",
                new_password=NEW_PASSWORD,
            )
            changed = await post(
                mine,
                "/consentgate/password",
                current_password=PASSWORD,
                new_password=NEW_PASSWORD,
            )
            states = [await signed_in(mine), await signed_in(other)]
        async with browser(gate) as fresh:
            old = (await login(fresh, password=PASSWORD)).status_code
            new = (await login(fresh, password=NEW_PASSWORD)).status_code
        return states, wrong.status_code, changed.status_code, old, new

    states, wrong, changed, old, new = run(scenario())
    assert wrong == 400 and changed == 303
    assert states == [True, False]
    assert old == 400 and new == 303


def test_sessions_server_weak_new_password_changes_nothing(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[int, int]:
        async with browser(gate) as c:
            await register(c)
            weak = await post(
                c, "/consentgate/password", current_password=PASSWORD, new_password="short"
            )
        async with browser(gate) as fresh:
            return weak.status_code, (await login(fresh, password=PASSWORD)).status_code

    assert run(scenario()) == (400, 303)


def test_sessions_server_account_deletion_ends_its_sessions(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[bool, bool, int]:
        async with browser(gate) as c:
            await register(c)
            before = await signed_in(c)
            user = await gate.ledger.storage.user_by_email("reader@example.com")
            assert user is not None
            assert await gate.ledger.storage.delete_user(user.id)  # `consentgate forget`
            gate.sessions.forget_cached()  # another worker, or 5 seconds later
            left = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT count(*) FROM sessions")
            return before, await signed_in(c), int(left.fetchone()[0])

    assert run(scenario()) == (True, False, 0)


def test_sessions_server_storage_outage_reads_as_signed_out_not_500(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[int, int, bool]:
        async with browser(gate) as c:
            await register(c)
            gate.sessions.forget_cached()
            raw = sqlite3.connect(tmp_path / "ledger.db")
            raw.execute("ALTER TABLE sessions RENAME TO sessions_gone")  # every lookup fails
            raw.commit()
            raw.close()
            page = await c.get("/news/1", headers={"accept": "text/html"})
            form = await c.get("/consentgate/register")
            return page.status_code, form.status_code, "cg-email" in form.text

    assert run(scenario()) == (200, 200, True)


def test_sessions_server_cookie_forged_for_a_stored_subject_is_refused(tmp_path: Path) -> None:
    """The row must match the cookie's subject: a session id is no one else's."""
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> bool:
        async with browser(gate) as c:
            await register(c)
            value = c.cookies["cg_session"]
        session = gate.sessions.codec.loads(value)
        assert session is not None
        forged = gate.sessions.codec.dumps(type(session)("someone-else", session.nonce))
        async with browser(gate, httpx.Cookies({"cg_session": forged})) as other:
            return await signed_in(other)

    assert run(scenario()) is False


def test_sessions_server_admin_logout_ends_a_copied_admin_cookie(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def scenario() -> tuple[int, int]:
        async with client(gate) as c:
            assert (await admin_login(c)).status_code == 303
            stolen = httpx.Cookies({ADMIN_COOKIE: c.cookies[ADMIN_COOKIE]})
            overview = await c.get(ADMIN, headers={"accept": "text/html"})
            token = await form_token(c, f"{ADMIN}")
            assert (await c.post(f"{ADMIN}/logout", data={"csrf_token": token})).status_code == 303
        async with client(gate, cookies=stolen) as thief:
            return overview.status_code, (await thief.get(ADMIN)).status_code

    assert run(scenario()) == (200, 401)


# -- the storage contract of sessions, on every backend ---------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        yield SQLiteStorage(tmp_path / "s.db")
        return
    with fresh_postgres_schema(require_postgres()) as url:
        yield storage_from_url(url)


def record(name: str, subject: str, *, kind: str = "reader", days: int = 1) -> SessionRecord:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    return SessionRecord(
        id_hash=hashlib.sha256(name.encode()).hexdigest(),
        kind=kind,
        subject=subject,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )


def test_sessions_server_storage_contract(storage: Storage) -> None:
    a, b, c = record("a", "u1"), record("b", "u1", days=3), record("c", "u2")
    admin = record("d", "u1", kind="admin")

    async def scenario() -> list[object]:
        await storage.open()
        try:
            for rec in (a, b, c, admin):
                await storage.create_session(rec)
            found = await storage.session_by_hash(a.id_hash)
            ended_others = await storage.delete_sessions("reader", "u1", keep=a.id_hash)
            after = [await storage.session_by_hash(r.id_hash) for r in (a, b, c, admin)]
            pruned = await storage.prune_sessions(a.expires_at + timedelta(seconds=1))
            left = [await storage.session_by_hash(r.id_hash) for r in (a, c, admin)]
            return [
                found,
                ended_others,
                after,
                pruned,
                left,
                await storage.delete_session(admin.id_hash),
                await storage.delete_session(admin.id_hash),
            ]
        finally:
            await storage.close()

    found, ended, after, pruned, left, deleted, again = run(scenario())
    assert found == a
    assert ended == 1 and after == [a, None, c, admin]  # only u1's other reader session
    assert pruned == 3 and left == [None, None, None]  # a, c and admin expired together
    assert (deleted, again) == (False, False)
