"""examples/fastapi_site through HTTP: consent, the wall, and the site's own accounts."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from examples.fastapi_site.app import AD_COOKIE, STATS_COOKIE, TOPIC_COOKIE, create_app
from examples.fastapi_site.articles import BY_SLUG
from tests.conftest import run

T = TypeVar("T")

FREE = "river-festival-returns"
REGISTERED = "council-budget-explained"
METERED = [
    "orchard-cider-cooperative",
    "bus-route-nine-saved",
    "school-garden-harvest",
    "footbridge-repairs-begin",
]


def late_sentence(slug: str) -> str:
    """The opening of the last paragraph: never on a cut page (the lead is 2 paragraphs)."""
    return html.escape(BY_SLUG[slug].paragraphs[-1][:60])


def with_client(tmp_path: Path, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def scenario() -> T:
        transport = httpx.ASGITransport(app=create_app(tmp_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://courier.test") as c:
            return await body(c)

    return run(scenario())


async def accept_all(c: httpx.AsyncClient) -> None:
    """As the banner's form does: the token from the JSON endpoint, the cg_csrf cookie."""
    state = await c.get("/consentgate/consent")
    assert "cg_csrf" in c.cookies
    response = await c.post(
        "/consentgate/consent",
        data={"action": "accept_all", "csrf_token": state.json()["csrf_token"], "next": "/"},
    )
    assert response.status_code == 303, response.text


async def sign_up(
    c: httpx.AsyncClient, email: str, *, accept_policy: bool = True, next_url: str = "/"
) -> httpx.Response:
    form = await c.get("/signup", params={"next": next_url})
    box = re.search(r'<input type="checkbox" name="accept_policy"[^>]*>', form.text)
    assert box, "the form has the policy box"
    assert "checked" not in box.group(0) and "required" in box.group(0)  # unticked, required
    data = {"email": email, "password": "long enough password", "next": next_url}
    if accept_policy:
        data["accept_policy"] = "yes"
    return await c.post("/signup", data=data)


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")]


def acceptances(tmp_path: Path) -> list[tuple[Any, ...]]:
    """consentgate's acceptance rows ([] while the ledger has not been opened yet)."""
    with sqlite3.connect(tmp_path / "consentgate.db") as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'acceptances'").fetchone():
            return []
        return db.execute(
            "SELECT user_id, purpose, granted, method, policy_version FROM acceptances"
        ).fetchall()


def user_count(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "users.db") as db:
        count: int = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    return count


# -- consent ------------------------------------------------------------------------------
def test_article_anonymous_reader_sees_consent_banner(tmp_path: Path) -> None:
    page = with_client(tmp_path, lambda c: c.get(f"/articles/{FREE}"))
    assert page.status_code == 200
    assert 'id="consentgate-banner"' in page.text
    assert "consentgate-access" not in page.headers  # consentgate removes its headers


def test_ad_cookie_undecided_dropped_then_set_after_accept(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        before = await c.get(f"/articles/{FREE}")
        await accept_all(c)
        return before, await c.get(f"/articles/{FREE}")

    before, after = with_client(tmp_path, body)
    assert AD_COOKIE not in set_cookie_names(before)  # the app set it; consentgate dropped it
    assert AD_COOKIE in set_cookie_names(after)
    assert 'id="consentgate-banner"' not in after.text


def test_pageview_analytics_cookie_only_after_accept(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        before = await c.post("/api/pageview")
        await accept_all(c)
        return before, await c.post("/api/pageview")

    before, after = with_client(tmp_path, body)
    assert before.json() == {"counted": False}
    assert STATS_COOKIE not in set_cookie_names(before)
    assert after.json() == {"counted": True}
    assert STATS_COOKIE in set_cookie_names(after)


def test_recommendations_request_state_consent_personalises_after_accept(
    tmp_path: Path,
) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[dict[str, Any], ...]:
        before = (await c.get("/api/recommendations")).json()
        refused = (await c.get("/prefs/topic", params={"topic": "transport"})).json()
        await accept_all(c)
        remembered = (await c.get("/prefs/topic", params={"topic": "transport"})).json()
        assert c.cookies.get(TOPIC_COOKIE) == "transport"
        after = (await c.get("/api/recommendations")).json()
        return before, refused, remembered, after

    before, refused, remembered, after = with_client(tmp_path, body)
    assert before["personalised"] is False and before["topic"] is None
    assert refused["remembered"] is False
    assert remembered["remembered"] is True
    assert after["personalised"] is True and after["topic"] == "transport"
    assert {item["slug"] for item in after["items"]} == {
        "bus-route-nine-saved",
        "footbridge-repairs-begin",
    }


# -- the wall -----------------------------------------------------------------------------
def test_wall_fourth_metered_article_cut_for_anonymous(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> list[httpx.Response]:
        return [await c.get(f"/articles/{slug}") for slug in METERED]

    pages = with_client(tmp_path, body)
    for slug, page in zip(METERED[:3], pages[:3], strict=True):
        assert late_sentence(slug) in page.text, slug
        assert 'id="consentgate-cta"' not in page.text
    cut = pages[3]
    assert cut.status_code == 200
    assert 'id="consentgate-cta"' in cut.text
    assert late_sentence(METERED[3]) not in cut.text
    assert html.escape(BY_SLUG[METERED[3]].paragraphs[0][:60]) in cut.text  # the lead stays
    assert f"/signup?next=/articles/{METERED[3]}" in cut.text.replace("%2F", "/")


def test_wall_registered_article_cut_for_anonymous(tmp_path: Path) -> None:
    page = with_client(tmp_path, lambda c: c.get(f"/articles/{REGISTERED}"))
    assert 'id="consentgate-cta"' in page.text
    assert late_sentence(REGISTERED) not in page.text
    assert "/signin?next=" in page.text


def test_wall_free_article_full_for_anonymous(tmp_path: Path) -> None:
    page = with_client(tmp_path, lambda c: c.get(f"/articles/{FREE}"))
    assert late_sentence(FREE) in page.text
    assert 'id="consentgate-cta"' not in page.text


# -- the site's own accounts --------------------------------------------------------------
def test_signup_policy_ticked_reads_in_full_and_records_acceptance(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        signed_up = await sign_up(c, "reader@example.org", next_url=f"/articles/{REGISTERED}")
        registered = await c.get(signed_up.headers["location"])
        for slug in METERED[:3]:
            await c.get(f"/articles/{slug}")
        metered = await c.get(f"/articles/{METERED[3]}")
        return signed_up, registered, metered

    signed_up, registered, metered = with_client(tmp_path, body)
    assert signed_up.status_code == 303
    assert signed_up.headers["location"] == f"/articles/{REGISTERED}"
    assert "courier_session" in set_cookie_names(signed_up)
    # user_resolver -> signed in -> the full text, past the meter too
    assert late_sentence(REGISTERED) in registered.text
    assert 'id="consentgate-cta"' not in registered.text
    assert late_sentence(METERED[3]) in metered.text
    assert acceptances(tmp_path) == [("1", "privacy_policy", 1, "external", "2026-01")]


def test_signup_policy_unticked_refused_without_account(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        refused = await sign_up(c, "reader@example.org", accept_policy=False)
        return refused, await c.get(f"/articles/{REGISTERED}")

    refused, article = with_client(tmp_path, body)
    assert refused.status_code == 400
    assert "accept the privacy policy" in refused.text
    assert "courier_session" not in set_cookie_names(refused)
    assert user_count(tmp_path) == 0
    assert acceptances(tmp_path) == []
    assert 'id="consentgate-cta"' in article.text


def test_signout_then_signin_wall_follows_the_session(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        await sign_up(c, "reader@example.org")
        await c.post("/signout")
        signed_out = await c.get(f"/articles/{REGISTERED}")
        signed_in = await c.post(
            "/signin",
            data={"email": "reader@example.org", "password": "long enough password"},
        )
        assert signed_in.status_code == 303
        return signed_out, await c.get(f"/articles/{REGISTERED}")

    signed_out, signed_in = with_client(tmp_path, body)
    assert late_sentence(REGISTERED) not in signed_out.text
    assert late_sentence(REGISTERED) in signed_in.text


def test_user_resolver_forged_session_cookie_is_anonymous(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> httpx.Response:
        c.cookies.set("courier_session", "eyJ1aWQiOiIxIn0.forged.signature")
        return await c.get(f"/articles/{REGISTERED}")

    page = with_client(tmp_path, body)
    assert 'id="consentgate-cta"' in page.text
    assert late_sentence(REGISTERED) not in page.text


def test_signup_from_another_origin_is_refused(tmp_path: Path) -> None:
    async def body(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post(
            "/signup",
            data={
                "email": "x@example.org",
                "password": "long enough password",
                "accept_policy": "yes",
            },
            headers={"origin": "https://evil.example"},
        )

    assert with_client(tmp_path, body).status_code == 403
    assert user_count(tmp_path) == 0
