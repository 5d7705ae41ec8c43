"""The admin dashboard over HTTP: a ConsentGate over a tiny app, a real SQLite ledger."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run, tamper_signature
from tests.services import fresh_postgres_schema, require_postgres
from tests.test_cli_operator import _fill, check_html

from consentgate import ConsentGate
from consentgate.operator.dashboard import ADMIN_COOKIE, Dashboard, dashboard_routes
from consentgate.operator.stats import compute_stats, uses_rollups
from consentgate.operator.store import Window
from consentgate.storage import (
    CONSENT_ACTIONS,
    ConsentRecord,
    SQLiteStorage,
    Storage,
    storage_from_url,
)

TOKEN = "admin-token-for-tests-0123456789abcdefghijklmnop"
TOKEN_SHA = hashlib.sha256(TOKEN.encode()).hexdigest()
ADMIN = "/consentgate/admin"
WINDOW = {"since": "2026-03-01", "until": "2026-03-03"}
BEARER = {"authorization": f"Bearer {TOKEN}"}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def not_found_app() -> Any:
    return html_app("<!DOCTYPE html><html><body>the app's 404</body></html>", status=404)


def admin_gate(tmp_path: Path, token_sha256: str | None = TOKEN_SHA) -> ConsentGate:
    options: dict[str, Any] = {"site_name": "The Test Gazette"}
    if token_sha256 is not None:
        options["admin"] = {"token_sha256": token_sha256}
    gate = make_gate(not_found_app(), tmp_path, **options)
    run(_fill(tmp_path / "ledger.db"))
    return gate


def dashboard_parts(gate: ConsentGate) -> tuple[Any, ...]:
    """What the middleware gives the dashboard: its pieces, not itself."""
    return (gate.pages, gate.keys, gate.ledger.storage, gate.ledger.ensure_open, gate.backoff)


def assert_secure_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
    assert headers["referrer-policy"] == "no-referrer"


async def login(c: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await c.get(f"{ADMIN}/login")
    match = CSRF_FIELD.search(form.text)
    assert match
    return await c.post(
        f"{ADMIN}/login", data={"token": token, "csrf_token": match.group(1), "next": ADMIN}
    )


def test_dashboard_off_without_token_is_the_apps_404(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path, token_sha256=None)
    assert dashboard_routes(*dashboard_parts(gate)) == {}

    async def go() -> None:
        async with client(gate) as c:
            response = await c.get(ADMIN, headers=BEARER)
            assert response.status_code == 404
            assert "the app's 404" in response.text
            assert (await c.get(f"{ADMIN}/login")).status_code == 404

    run(go())


def test_dashboard_routes_registered_but_token_removed_answer_404(tmp_path: Path) -> None:
    gate = make_gate(not_found_app(), tmp_path)
    gate.endpoints.add_routes(Dashboard(*dashboard_parts(gate)).routes())

    async def go() -> None:
        async with client(gate) as c:
            response = await c.get(ADMIN, headers=BEARER)
            assert response.status_code == 404
            assert_secure_headers(response)

    run(go())


def test_dashboard_without_auth_is_401_or_redirect_to_login(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            response = await c.get(ADMIN)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert_secure_headers(response)
            search = await c.get(f"{ADMIN}/search", params={"q": "a" * 32})
            assert search.status_code == 401 and "a" * 32 not in search.text
            browser = await c.get(ADMIN, headers={"accept": "text/html"})
            assert browser.status_code == 303
            assert browser.headers["location"].startswith(f"{ADMIN}/login?next=")

    run(go())


def test_dashboard_bearer_token_shows_overview_with_charts(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            response = await c.get(ADMIN, params=WINDOW, headers=BEARER)
            assert response.status_code == 200
            assert_secure_headers(response)
            page = response.text
            checker = check_html(page)
            assert "script" not in checker.tags
            assert page.count("<svg") >= 4
            assert "Decisions per day" in page and "Consent rate per category" in page
            assert "<strong>6</strong>" in page  # decisions, as `stats` says
            assert "<strong>30.0 %</strong>" in page  # wall → registration
            assert "<strong>25.0 %</strong>" in page  # GPC share
            for days in ("7", "365"):
                other = await c.get(ADMIN, params={"days": days}, headers=BEARER)
                assert other.status_code == 200
            bad = await c.get(ADMIN, params={"days": "many"}, headers=BEARER)
            assert bad.status_code == 400 and "days must be a whole number" in bad.text

    run(go())


def test_dashboard_wrong_bearer_is_401_then_rate_limited(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            wrong = {"authorization": "Bearer not-the-token"}
            statuses = [(await c.get(ADMIN, headers=wrong)).status_code for _ in range(11)]
            assert statuses == [401] * 10 + [429]
            basic = await c.get(ADMIN, headers={"authorization": "Basic YWRtaW46eA=="})
            assert basic.status_code == 429

    run(go())


def test_dashboard_login_form_sets_strict_path_limited_cookie(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            form = await c.get(f"{ADMIN}/login")
            assert form.status_code == 200
            assert_secure_headers(form)
            assert 'type="password"' in form.text and "<script" not in form.text
            response = await login(c)
            assert response.status_code == 303
            assert response.headers["location"] == ADMIN
            cookie = next(
                h for h in response.headers.get_list("set-cookie") if h.startswith(ADMIN_COOKIE)
            )
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert f"Path={ADMIN}" in cookie and "Max-Age=3600" in cookie
            overview = await c.get(ADMIN, params=WINDOW)
            assert overview.status_code == 200 and "<svg" in overview.text
            # Signing out ends it.
            token = CSRF_FIELD.search(overview.text)
            assert token
            out = await c.post(f"{ADMIN}/logout", data={"csrf_token": token.group(1)})
            assert out.status_code == 303
            assert (await c.get(ADMIN)).status_code == 401

    run(go())


def test_dashboard_login_refuses_wrong_token_and_missing_csrf(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            wrong = await login(c, "nope")
            assert wrong.status_code == 401
            assert "not the admin token" in wrong.text
            assert ADMIN_COOKIE not in wrong.headers.get("set-cookie", "")
            no_csrf = await c.post(f"{ADMIN}/login", data={"token": TOKEN})
            assert no_csrf.status_code == 403
            assert ADMIN_COOKIE not in c.cookies
            form = await c.get(f"{ADMIN}/login")
            match = CSRF_FIELD.search(form.text)
            assert match
            cross = await c.post(
                f"{ADMIN}/login",
                data={"token": TOKEN, "csrf_token": match.group(1)},
                headers={"origin": "https://evil.example"},
            )
            assert cross.status_code == 403
            # Referrer-Policy: no-referrer makes browsers send "Origin: null" on our own
            # form; Fetch Metadata tells our page from a sandboxed foreign one.
            null_cross = await c.post(
                f"{ADMIN}/login",
                data={"token": TOKEN, "csrf_token": match.group(1)},
                headers={"origin": "null", "sec-fetch-site": "cross-site"},
            )
            assert null_cross.status_code == 403
            null_own = await c.post(
                f"{ADMIN}/login",
                data={"token": TOKEN, "csrf_token": match.group(1)},
                headers={"origin": "null", "sec-fetch-site": "same-origin"},
            )
            assert null_own.status_code == 303

    run(go())


def test_dashboard_login_is_rate_limited(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            statuses = [(await login(c, f"guess-{i}")).status_code for i in range(10)]
            assert statuses == [401] * 10
            limited = await login(c, TOKEN)  # even the right token, once limited
            assert limited.status_code == 429
            assert limited.headers["retry-after"] == "1"  # the first delay
            assert_secure_headers(limited)

    run(go())


def test_dashboard_tampered_or_foreign_cookie_is_401_never_500(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)
    good = run(Dashboard(*dashboard_parts(gate)).session_cookie_value())

    async def go() -> None:
        for value in ("garbage", tamper_signature(good), "", "a." * 600):
            async with client(gate, cookies={ADMIN_COOKIE: value}) as c:
                assert (await c.get(ADMIN)).status_code == 401
        async with client(gate, cookies={ADMIN_COOKIE: good}) as c:
            assert (await c.get(ADMIN, params=WINDOW)).status_code == 200

    run(go())


def test_dashboard_new_token_ends_old_sessions(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)
    old_cookie = run(Dashboard(*dashboard_parts(gate)).session_cookie_value())
    other_sha = hashlib.sha256(b"another token").hexdigest()
    rotated = make_gate(not_found_app(), tmp_path, admin={"token_sha256": other_sha})

    async def go() -> None:
        async with client(rotated, cookies={ADMIN_COOKIE: old_cookie}) as c:
            assert (await c.get(ADMIN)).status_code == 401

    run(go())


def test_dashboard_search_by_consent_id_and_email(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate, headers=BEARER) as c:
            by_id = await c.get(f"{ADMIN}/search", params={"q": "c" * 32})
            assert by_id.status_code == 200
            assert_secure_headers(by_id)
            check_html(by_id.text)
            assert "2 ledger rows" in by_id.text
            assert by_id.text.index("<td>gpc</td>") < by_id.text.index("<td>update</td>")
            by_mail = await c.get(f"{ADMIN}/search", params={"q": "READER@example.org"})
            assert by_mail.status_code == 200
            text = by_mail.text
            assert "reader@example.org" in text and "a scrypt hash is stored" in text
            assert "scrypt$" not in text
            assert "privacy_policy" in text and "newsletter" in text
            assert "cg_meter" in text
            unknown = await c.get(f"{ADMIN}/search", params={"q": "<b>x</b>@example.org"})
            assert unknown.status_code == 200
            assert "No account" in unknown.text and "<b>x</b>" not in unknown.text
            empty = await c.get(f"{ADMIN}/search")
            assert empty.status_code == 200

    run(go())


def test_dashboard_login_next_stays_inside_the_dashboard(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate) as c:
            form = await c.get(f"{ADMIN}/login")
            match = CSRF_FIELD.search(form.text)
            assert match
            for next_url, expected in (
                ("//evil.example/", ADMIN),
                ("/elsewhere", ADMIN),
                (f"{ADMIN}/search?q=abc", f"{ADMIN}/search?q=abc"),
            ):
                response = await c.post(
                    f"{ADMIN}/login",
                    data={"token": TOKEN, "csrf_token": match.group(1), "next": next_url},
                )
                assert response.headers["location"] == expected

    run(go())


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_dashboard_other_methods_are_405(tmp_path: Path, method: str) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> None:
        async with client(gate, headers=BEARER) as c:
            assert (await c.request(method, ADMIN)).status_code == 405

    run(go())


# -- the admin login and token limits (issue: hardened) -----------------------------------


def test_dashboard_bearer_right_token_after_the_limit_is_not_even_compared(
    tmp_path: Path,
) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> list[int]:
        async with client(gate) as c:
            wrong = {"authorization": "Bearer not-the-token"}
            statuses = [(await c.get(ADMIN, headers=wrong)).status_code for _ in range(10)]
            statuses.append((await c.get(ADMIN, headers=BEARER)).status_code)
            return statuses

    assert run(go()) == [401] * 10 + [429]


def test_dashboard_cross_site_junk_posts_do_not_lock_the_operator_out(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> tuple[set[int], int]:
        async with client(gate) as victim:
            form = await victim.get(f"{ADMIN}/login")
            match = CSRF_FIELD.search(form.text)
            assert match
            junk = set()
            for n in range(30):
                # A page elsewhere makes the operator's browser post guesses: from another
                # origin, or without the form's token.
                headers = {"origin": "https://evil.example"} if n % 2 else {}
                data = {"token": f"guess-{n}"}
                if n % 2:
                    data["csrf_token"] = match.group(1)
                answer = await victim.post(f"{ADMIN}/login", data=data, headers=headers)
                junk.add(answer.status_code)
            return junk, (await login(victim)).status_code

    junk, real = run(go())
    assert junk == {403}
    assert real == 303


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "0001-01-01", "until": "9999-12-31"}, "at most 366 days"),
        ({"since": "2020-01-01"}, "at most 366 days"),
        ({"days": "367"}, "from 1 to 366"),
        ({"days": "0"}, "from 1 to 366"),
        ({"days": "9" * 40}, "from 1 to 366"),
        ({"since": "2026-03-03", "until": "2026-03-01"}, "before --until"),
        ({"since": "yesterday"}, "not an ISO-8601 date"),
    ],
)
def test_dashboard_window_over_366_days_or_bad_is_400_with_a_message(
    tmp_path: Path, params: dict[str, str], message: str
) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> httpx.Response:
        async with client(gate) as c:
            return await c.get(ADMIN, params=params, headers=BEARER)

    response = run(go())
    assert response.status_code == 400
    assert message in response.text
    assert_secure_headers(response)


def test_dashboard_window_of_exactly_366_days_is_served(tmp_path: Path) -> None:
    gate = admin_gate(tmp_path)

    async def go() -> int:
        async with client(gate) as c:
            params = {"since": "2025-03-03", "until": "2026-03-04"}  # 366 days
            return (await c.get(ADMIN, params=params, headers=BEARER)).status_code

    assert run(go()) == 200


# -- the rollups answer what the ledger's rows answer ---------------------------------------


def random_ledger(seed: int, now: datetime, n: int = 400) -> list[ConsentRecord]:
    rng = random.Random(seed)
    categories = ("necessary", "preferences", "analytics", "marketing")
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(n // 3)]
    rows = []
    for _ in range(n):
        granted = ["necessary", *[c for c in categories[1:] if rng.random() < 0.4]]
        action = rng.choice(sorted(CONSENT_ACTIONS))
        rows.append(
            ConsentRecord(
                consent_id=rng.choice(ids),
                user_id=None,
                action=action,
                granted=tuple(granted),
                denied=tuple(c for c in categories if c not in granted),
                policy_version="1",
                banner_text_sha256="a" * 64,
                language="en",
                region_mode="opt-in",
                method="gpc" if action == "gpc" else rng.choice(["form", "js", "api"]),
                ip_hmac=None,
                user_agent=None,
                # Up to 45 days back, in any order (two workers, clock skew).
                recorded_at=now - timedelta(seconds=rng.randrange(45 * 86_400)),
            )
        )
    return rows


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        yield SQLiteStorage(tmp_path / "rollups.db")
        return
    with fresh_postgres_schema(require_postgres()) as url:
        yield storage_from_url(url)


@pytest.mark.parametrize("seed", [1, 2])
def test_dashboard_rollups_equal_the_ledger_stream(ledger_store: Storage, seed: int) -> None:
    # A fixed afternoon, not the clock: at 01:00 UTC "today" holds an hour of a 45-day
    # spread of 400 rows, often none, and the test would fail by the time of day.
    now = datetime(2026, 6, 10, 15, 30, tzinfo=UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    config_categories = ("necessary", "preferences", "analytics", "marketing")

    async def go() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        await ledger_store.open()
        try:
            for rec in random_ledger(seed, now):
                await ledger_store.record_consent(rec)
            pairs = []
            for days in (1, 7, 30, 60):
                window = Window(today - timedelta(days=days - 1), None)
                assert uses_rollups(window, now)
                figures = []
                for rollups in (True, False):
                    stats = await compute_stats(
                        ledger_store,
                        window,
                        categories=config_categories,
                        required=frozenset({"necessary"}),
                        now=now,
                        rollups=rollups,
                    )
                    figures.append(stats.to_json())
                pairs.append((figures[0], figures[1]))
            return pairs
        finally:
            await ledger_store.close()

    for from_rollups, from_rows in run(go()):
        assert from_rollups == from_rows
        assert from_rows["decisions"]["total"] > 0


def test_dashboard_rollups_only_for_whole_days_until_now() -> None:
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    midnight = datetime(2026, 6, 1, tzinfo=UTC)
    assert uses_rollups(Window(midnight, None), now)
    assert uses_rollups(Window(midnight, datetime(2026, 6, 11, tzinfo=UTC)), now)
    assert not uses_rollups(Window(midnight, datetime(2026, 6, 5, tzinfo=UTC)), now)
    assert not uses_rollups(Window(midnight + timedelta(hours=1), None), now)
    assert not uses_rollups(Window(None, None), now)


def test_dashboard_rollups_count_parallel_inserts_exactly(ledger_store: Storage) -> None:
    """Many writers at once (a pool of connections in PostgreSQL): no lost count, no
    deadlock between the rollup rows, the latest decision of each id kept."""
    now = datetime.now(UTC)
    rows = random_ledger(3, now, n=300)

    async def go() -> tuple[int, int, int, int]:
        await ledger_store.open()
        try:
            await asyncio.gather(*(ledger_store.record_consent(rec) for rec in rows))
            since = now - timedelta(days=60)
            daily = await ledger_store.consent_daily(since.date(), None)
            sets, _ = await ledger_store.latest_decisions(since)
            return (
                sum(n for *_, n in daily),
                await ledger_store.count_consents(),
                sum(n for _, n in sets),
                len({rec.consent_id for rec in rows}),
            )
        finally:
            await ledger_store.close()

    decisions, stored, ids, distinct = run(go())
    assert decisions == stored == len(rows)
    assert ids == distinct
