"""Pages a shared cache can keep, per consent class: the same bytes for every reader of a
class, named in a header, with the app's own public caching kept; everything per-reader
(walled, signed in, our pages, a Set-Cookie, a forged class cookie) stays private."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import client, decide, html_app, make_gate, run
from tests.test_accounts_http import register

PUBLIC = [("cache-control", "public, max-age=60")]
ALL_OPTIONAL = "g.analytics.marketing.preferences"


def _gate(tmp_path: Path, *, headers: Any = PUBLIC, **options: Any) -> Any:
    options.setdefault("wall", {"rules": [{"path": "/premium/*", "access": "registered"}]})
    return make_gate(html_app(headers=headers), tmp_path, **options)


def _reader(gate: Any, number: int) -> httpx.AsyncClient:
    # Different readers: another address, another browser, their own cookie jar.
    return client(gate, headers={"user-agent": f"Reader/{number}", "x-reader": str(number)})


def test_shared_classes_undecided_readers_get_one_public_copy(tmp_path: Path) -> None:
    gate = _gate(tmp_path)

    async def scenario() -> list[httpx.Response]:
        answers = []
        for number in range(3):
            async with _reader(gate, number) as c:
                answers.append(await c.get("/news/story", headers={"accept": "text/html"}))
        return answers

    answers = run(scenario())
    first = answers[0]
    assert first.headers["consentgate-class"] == "u"
    assert first.headers["cache-control"] == "public, max-age=60"
    vary = {v.strip().lower() for v in first.headers["vary"].split(",")}
    assert {"cookie", "sec-fetch-dest", "accept-language", "sec-gpc"} <= vary
    assert 'id="consentgate-banner"' in first.text
    assert 'name="csrf_token" value=""' in first.text  # no reader's token in a shared page
    for answer in answers:
        assert "set-cookie" not in answer.headers
        assert answer.content == first.content


def test_shared_classes_decision_sets_the_class_cookie_and_readers_of_it_share(
    tmp_path: Path,
) -> None:
    gate = _gate(tmp_path)

    async def scenario() -> tuple[list[str], list[httpx.Response]]:
        pages, cookies = [], []
        for number in range(2):
            async with _reader(gate, number) as c:
                decided = await decide(c, "accept_all")
                cookies = decided.headers.get_list("set-cookie")
                pages.append(await c.get("/news/story", headers={"accept": "text/html"}))
        return cookies, pages

    cookies, pages = run(scenario())
    consent = next(v for v in cookies if v.startswith("cg_consent="))
    klass = next(v for v in cookies if v.startswith("cg_class="))
    assert klass.split(";")[0] == f"cg_class={ALL_OPTIONAL}"
    max_age = [p for p in consent.split("; ") if p.startswith("Max-Age=")]
    assert max_age and max_age[0] in klass  # it lives exactly as long as the decision
    assert all(p.headers["consentgate-class"] == ALL_OPTIONAL for p in pages)
    assert pages[0].content == pages[1].content  # two readers, two consent ids, one copy
    assert 'id="consentgate-banner"' not in pages[0].text


def test_shared_classes_withdrawal_names_the_required_only_class(tmp_path: Path) -> None:
    gate = _gate(tmp_path)

    async def scenario() -> tuple[str, str]:
        async with client(gate) as c:
            await decide(c, "reject_all")
            page = await c.get("/news/story", headers={"accept": "text/html"})
            return c.cookies["cg_class"], page.headers["consentgate-class"]

    assert run(scenario()) == ("g", "g")


@pytest.mark.parametrize("forged", ["u", "g", ALL_OPTIONAL, "g.analytics"])
def test_shared_classes_class_cookie_that_is_not_the_readers_class_gets_a_private_page(
    tmp_path: Path, forged: str
) -> None:
    # Forging the cookie must not let one class's copy be stored under another's key.
    gate = _gate(tmp_path)

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            await decide(c, "save", ["preferences"])  # class g.preferences
            c.cookies.set("cg_class", forged, domain="news.test")
            return await c.get("/news/story", headers={"accept": "text/html"})

    response = run(scenario())
    assert "consentgate-class" not in response.headers
    assert response.headers["cache-control"].startswith("private")


@pytest.mark.parametrize(
    ("case", "path", "headers"),
    [
        ("walled", "/premium/story", PUBLIC),
        ("app-not-public", "/news/story", [("cache-control", "max-age=60")]),
        ("app-private", "/news/story", [("cache-control", "public, private")]),
        ("app-sets-a-cookie", "/news/story", [*PUBLIC, ("set-cookie", "session=1; Path=/")]),
        ("our-own-page", "/consentgate/settings", PUBLIC),
    ],
)
def test_shared_classes_per_reader_responses_stay_private(
    tmp_path: Path, case: str, path: str, headers: Any
) -> None:
    gate = _gate(tmp_path, headers=headers)

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            return await c.get(path, headers={"accept": "text/html"})

    response = run(scenario())
    assert "consentgate-class" not in response.headers, case
    assert "public" not in response.headers.get("cache-control", ""), case


def test_shared_classes_signed_in_reader_gets_a_private_page_with_a_token(tmp_path: Path) -> None:
    gate = _gate(tmp_path, accounts={"enabled": True})

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            await register(c)
            return await c.get("/news/story", headers={"accept": "text/html"})

    response = run(scenario())
    assert "consentgate-class" not in response.headers
    assert response.headers["cache-control"].startswith("private")
    assert 'name="csrf_token" value=""' not in response.text


def test_shared_classes_switched_off_every_rewritten_page_is_private(tmp_path: Path) -> None:
    gate = _gate(tmp_path, cache={"shared": False})

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            return await c.get("/news/story", headers={"accept": "text/html"})

    response = run(scenario())
    assert "consentgate-class" not in response.headers
    assert response.headers["cache-control"].startswith("private")
    assert any(v.startswith("cg_csrf=") for v in response.headers.get_list("set-cookie"))


def test_shared_classes_banner_of_a_shared_page_decides_with_the_browsers_word(
    tmp_path: Path,
) -> None:
    # The banner's form carries no token; the post names our origin, as browsers do.
    gate = _gate(tmp_path)

    async def scenario() -> tuple[int, str]:
        async with client(gate) as c:
            page = await c.get("/news/story", headers={"accept": "text/html"})
            assert "cg_csrf" not in c.cookies
            posted = await c.post(
                "/consentgate/consent",
                data={"action": "accept_all", "csrf_token": "", "next": "/news/story"},
                headers={"origin": "http://news.test", "sec-fetch-site": "same-origin"},
            )
            assert 'id="consentgate-banner"' in page.text
            after = await c.get("/news/story", headers={"accept": "text/html"})
            return posted.status_code, after.headers["consentgate-class"]

    assert run(scenario()) == (303, ALL_OPTIONAL)
