"""examples/django_site through HTTP: consent, the wall, and Django's own accounts.

Django's settings are per process, so one application (one data folder) serves the
whole module; every test has its own client (its own cookies, so its own meter) and
its own user names.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

pytest.importorskip("django")

from examples.django_site.articles import BY_SLUG
from examples.django_site.asgi import consentgate_config, create_application
from tests.conftest import run

T = TypeVar("T")

AD_COOKIE = "post_ad_id"  # views.AD_COOKIE (importing views needs Django configured)
STATS_COOKIE = "post_stats_id"

FREE = "snow-ploughs-ready"
REGISTERED = "town-plan-consultation"
METERED = [
    "market-hall-lanterns",
    "choir-wins-regional-prize",
    "allotment-waiting-list",
    "swimming-pool-roof",
]
PASSWORD = "a long enough password"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("django_site")


@pytest.fixture(scope="module")
def application(data_dir: Path) -> Any:
    return create_application(data_dir)  # configures Django and runs migrate


def with_client(app: Any, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def scenario() -> T:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://post.test") as c:
            return await body(c)

    return run(scenario())


def late_sentence(slug: str) -> str:
    """The opening of the last paragraph: never on a cut page (the lead is 2 paragraphs)."""
    return html.escape(BY_SLUG[slug].paragraphs[-1][:60])


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
    c: httpx.AsyncClient, username: str, *, accept_policy: bool = True, next_url: str = "/"
) -> httpx.Response:
    """Through Django's own form: its CSRF token, UserCreationForm's fields, the policy box."""
    form = await c.get("/signup", params={"next": next_url})
    match = CSRF_FIELD.search(form.text)
    assert match, form.text
    box = re.search(r'<input type="checkbox" name="accept_policy"[^>]*>', form.text)
    assert box, "the form has the policy box"
    assert "checked" not in box.group(0) and "required" in box.group(0)  # unticked, required
    data = {
        "csrfmiddlewaretoken": match.group(1),
        "username": username,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "next": next_url,
    }
    if accept_policy:
        data["accept_policy"] = "on"
    return await c.post("/signup", data=data)


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")]


def django_user_id(data_dir: Path, username: str) -> str | None:
    with sqlite3.connect(data_dir / "django.db") as db:
        row = db.execute("SELECT id FROM auth_user WHERE username = ?", (username,)).fetchone()
    return None if row is None else str(row[0])


def acceptances(data_dir: Path, user_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "consentgate.db") as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'acceptances'").fetchone():
            return []
        return db.execute(
            "SELECT purpose, granted, method, policy_version FROM acceptances WHERE user_id = ?",
            (user_id,),
        ).fetchall()


# -- consent ------------------------------------------------------------------------------
def test_article_anonymous_reader_sees_consent_banner(application: Any) -> None:
    page = with_client(application, lambda c: c.get(f"/articles/{FREE}"))
    assert page.status_code == 200
    assert 'id="consentgate-banner"' in page.text
    assert "consentgate-access" not in page.headers


def test_ad_cookie_undecided_dropped_then_set_after_accept(application: Any) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        before = await c.get(f"/articles/{FREE}")
        await accept_all(c)
        return before, await c.get(f"/articles/{FREE}")

    before, after = with_client(application, body)
    assert AD_COOKIE not in set_cookie_names(before)  # the view set it; consentgate dropped it
    assert AD_COOKIE in set_cookie_names(after)


def test_view_reads_consent_from_request_scope(application: Any) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[Any, ...]:
        before = (await c.get("/api/consent")).json()
        counted_before = await c.post("/api/pageview")
        await accept_all(c)
        after = (await c.get("/api/consent")).json()
        return before, counted_before, after, await c.post("/api/pageview")

    before, counted_before, after, counted_after = with_client(application, body)
    assert before == {"decided": False, "analytics": False, "marketing": False}
    assert counted_before.json() == {"counted": False}
    assert STATS_COOKIE not in set_cookie_names(counted_before)
    assert after == {"decided": True, "analytics": True, "marketing": True}
    assert counted_after.json() == {"counted": True}
    assert STATS_COOKIE in set_cookie_names(counted_after)


# -- the wall -----------------------------------------------------------------------------
def test_wall_fourth_metered_article_cut_for_anonymous(application: Any) -> None:
    async def body(c: httpx.AsyncClient) -> list[httpx.Response]:
        return [await c.get(f"/articles/{slug}") for slug in METERED]

    pages = with_client(application, body)
    for slug, page in zip(METERED[:3], pages[:3], strict=True):
        assert late_sentence(slug) in page.text, slug
        assert 'id="consentgate-cta"' not in page.text
    cut = pages[3]
    assert 'id="consentgate-cta"' in cut.text
    assert late_sentence(METERED[3]) not in cut.text
    assert html.escape(BY_SLUG[METERED[3]].paragraphs[0][:60]) in cut.text
    assert f"/signup?next=/articles/{METERED[3]}" in cut.text.replace("%2F", "/")


def test_wall_registered_article_cut_for_anonymous(application: Any) -> None:
    page = with_client(application, lambda c: c.get(f"/articles/{REGISTERED}"))
    assert 'id="consentgate-cta"' in page.text
    assert late_sentence(REGISTERED) not in page.text
    assert "/signin?next=" in page.text


# -- Django's own accounts ----------------------------------------------------------------
def test_signup_policy_ticked_reads_in_full_and_records_acceptance(
    application: Any, data_dir: Path
) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        signed_up = await sign_up(c, "ada", next_url=f"/articles/{REGISTERED}")
        registered = await c.get(signed_up.headers["location"])
        for slug in METERED[:3]:
            await c.get(f"/articles/{slug}")
        return signed_up, registered, await c.get(f"/articles/{METERED[3]}")

    signed_up, registered, metered = with_client(application, body)
    assert signed_up.status_code == 303, signed_up.text
    assert signed_up.headers["location"] == f"/articles/{REGISTERED}"
    assert "sessionid" in set_cookie_names(signed_up)
    # The user resolver finds the Django session: the full text, past the meter too.
    assert late_sentence(REGISTERED) in registered.text
    assert 'id="consentgate-cta"' not in registered.text
    assert late_sentence(METERED[3]) in metered.text
    user_id = django_user_id(data_dir, "ada")
    assert user_id is not None
    assert acceptances(data_dir, user_id) == [("privacy_policy", 1, "external", "2026-02")]


def test_signup_policy_unticked_refused_without_account(application: Any, data_dir: Path) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        refused = await sign_up(c, "grace", accept_policy=False)
        return refused, await c.get(f"/articles/{REGISTERED}")

    refused, article = with_client(application, body)
    assert refused.status_code == 400
    assert "Please read and accept the privacy policy to register." in refused.text
    assert "sessionid" not in set_cookie_names(refused)
    assert django_user_id(data_dir, "grace") is None
    assert 'id="consentgate-cta"' in article.text


def test_signout_then_signin_wall_follows_the_session(application: Any) -> None:
    async def body(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        await sign_up(c, "linus")
        home = await c.get("/")
        token = CSRF_FIELD.search(home.text)
        assert token, "the sign-out form carries Django's CSRF token"
        await c.post("/signout", data={"csrfmiddlewaretoken": token.group(1)})
        signed_out = await c.get(f"/articles/{REGISTERED}")
        form = await c.get("/signin")
        token = CSRF_FIELD.search(form.text)
        assert token
        signed_in = await c.post(
            "/signin",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "linus",
                "password": PASSWORD,
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        return signed_out, await c.get(f"/articles/{REGISTERED}")

    signed_out, signed_in = with_client(application, body)
    assert late_sentence(REGISTERED) not in signed_out.text
    assert late_sentence(REGISTERED) in signed_in.text


def test_user_resolver_unknown_session_key_is_anonymous(application: Any) -> None:
    async def body(c: httpx.AsyncClient) -> httpx.Response:
        c.cookies.set("sessionid", "no-such-session-key-0123456789abcdef")
        return await c.get(f"/articles/{REGISTERED}")

    page = with_client(application, body)
    assert 'id="consentgate-cta"' in page.text


def test_raw_django_display_case_headers_enforced(application: Any, data_dir: Path) -> None:
    from django.core.asgi import get_asgi_application

    from consentgate import ConsentGate

    raw = ConsentGate(get_asgi_application(), config=consentgate_config(data_dir))
    page = with_client(raw, lambda c: c.get(f"/articles/{FREE}"))
    assert AD_COOKIE not in set_cookie_names(page)
    assert 'id="consentgate-banner"' in page.text
