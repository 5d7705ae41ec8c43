"""The registration wall end to end through HTTP: the meter, the cut, and every leak path.

Each article paragraph after the lead carries a marker (``HIDDEN-<slug>-<n>``); a walled
response must not contain any marker, in any form: body, JSON-LD, HEAD, Range, gzip.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import SECRET, client, run

from consentgate import Config, ConsentGate

LEAD = 2
PARAGRAPHS = 10
SLUGS = ("alpha", "bravo", "charlie", "delta", "echo")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def paragraph(slug: str, n: int) -> str:
    secret = f" HIDDEN-{slug}-{n}" if n >= LEAD else ""
    return f"Paragraph {n} of the {slug} story, long enough to be a paragraph.{secret}"


def article_html(slug: str) -> str:
    body = "".join(f"<p>{paragraph(slug, n)}</p>" for n in range(PARAGRAPHS))
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": f"The {slug} story",
        "articleBody": " ".join(paragraph(slug, n) for n in range(PARAGRAPHS)),
    }
    return (
        "<!DOCTYPE html><html><head><title>" + slug + "</title>"
        '<link rel="amphtml" href="/amp/' + slug + '">'
        '<script type="application/ld+json">' + json.dumps(ld) + "</script></head>"
        "<body><header>The Test Gazette</header><article><h1>The " + slug + " story</h1>"
        '<div class="article-body">' + body + "</div>"
        "<aside data-consentgate-remove>Full text for subscribers: HIDDEN-"
        + slug
        + "-aside</aside>"
        "<footer>Also read</footer></article></body></html>"
    )


def hidden_markers(text: str | bytes) -> list[str]:
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return re.findall(r"HIDDEN-[a-z]+-\w+", data)


def full_text_present(text: str, slug: str) -> bool:
    return all(f"HIDDEN-{slug}-{n}" in text for n in range(LEAD, PARAGRAPHS))


class ArticleApp:
    """A raw ASGI news app; what it does per request is set by the test."""

    def __init__(self) -> None:
        self.chunk_size: int | None = None
        self.encoding: str | None = None
        self.status = 200
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.content_type = b"text/html; charset=utf-8"
        self.seen_headers: list[dict[bytes, bytes]] = []
        self.body_override: bytes | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen_headers.append(dict(scope["headers"]))
        slug = scope["path"].rsplit("/", 1)[-1]
        data = self.body_override or article_html(slug).encode()
        headers = [(b"content-type", self.content_type), *self.extra_headers]
        headers += [(b"etag", b'"v1"'), (b"last-modified", b"Tue, 01 Sep 2026 10:00:00 GMT")]
        headers += [(b"accept-ranges", b"bytes"), (b"cache-control", b"public, max-age=600")]
        if self.encoding == "gzip":
            data = gzip.compress(data)
            headers.append((b"content-encoding", b"gzip"))
        elif self.encoding:
            headers.append((b"content-encoding", self.encoding.encode()))
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        size = self.chunk_size or len(data) or 1
        for i in range(0, len(data), size):
            more = i + size < len(data)
            await send(
                {"type": "http.response.body", "body": data[i : i + size], "more_body": more}
            )


def wall_gate(app: Any, tmp_path: Path, **options: Any) -> ConsentGate:
    wall = {
        "rules": [
            {"path": "/articles/*", "access": "metered"},
            {"path": "/premium/*", "access": "registered"},
            {"path": "/free/*", "access": "free"},
        ],
        "article_selector": "div.article-body",
        "lead_paragraphs": LEAD,
    }
    wall.update(options.pop("wall", {}))
    config = {
        "secret_keys": [SECRET],
        "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        "wall": wall,
        **options,
    }
    resolver = config.pop("crawler_resolver", None)
    return ConsentGate(app, config=Config.from_mapping(config), crawler_resolver=resolver)


async def read(c: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    return await c.get(path, headers={"accept": "text/html", **kwargs.pop("headers", {})}, **kwargs)


async def register(
    c: httpx.AsyncClient, email: str = "reader@example.org", next_url: str = "/"
) -> httpx.Response:
    form = await c.get(f"/consentgate/register?next={next_url}")
    token = CSRF_FIELD.search(form.text)
    assert token, "the register page has a CSRF field"
    registered = await c.post(
        "/consentgate/register",
        data={
            "email": email,
            "password": "a long enough passphrase",
            "accept_policy": "yes",
            "csrf_token": token.group(1),
            "next": next_url,
        },
    )
    assert registered.status_code == 200, "registering answers: look in your inbox"
    # Not yet verified, the reader signs in with the password (accounts.verification
    # = "grace": within the grace period the wall lets them through).
    login_form = await c.get("/consentgate/login")
    login_token = CSRF_FIELD.search(login_form.text)
    assert login_token, "the login page has a CSRF field"
    return await c.post(
        "/consentgate/login",
        data={
            "email": email,
            "password": "a long enough passphrase",
            "csrf_token": login_token.group(1),
            "next": next_url,
        },
    )


# -- the meter ---------------------------------------------------------------------


def test_wall_meter_three_full_then_cut_and_rereading_is_free(tmp_path: Path) -> None:
    async def scenario() -> list[httpx.Response]:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return [
                await read(c, f"/articles/{s}")
                for s in ("alpha", "bravo", "charlie", "delta", "alpha")
            ]

    alpha, bravo, charlie, delta, alpha_again = run(scenario())
    for response, slug in ((alpha, "alpha"), (bravo, "bravo"), (charlie, "charlie")):
        assert full_text_present(response.text, slug)
        assert 'id="consentgate-cta"' not in response.text
    assert hidden_markers(delta.text) == []
    assert 'id="consentgate-cta"' in delta.text
    assert "Paragraph 1 of the delta story" in delta.text
    assert full_text_present(alpha_again.text, "alpha")


def test_wall_registered_only_article_is_cut_on_first_read(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await read(c, "/premium/alpha")

    response = run(scenario())
    assert hidden_markers(response.text) == []
    assert 'data-cg-reason="registration_required"' in response.text


def test_wall_free_route_never_cut(tmp_path: Path) -> None:
    async def scenario() -> list[httpx.Response]:
        async with client(
            wall_gate(
                ArticleApp(),
                tmp_path,
                wall={
                    "rules": [{"path": "/free/*", "access": "free"}],
                    "default_access": "registered",
                },
            )
        ) as c:
            return [await read(c, "/free/alpha"), await read(c, "/anything/bravo")]

    free, default = run(scenario())
    assert full_text_present(free.text, "alpha")
    assert hidden_markers(default.text) == []


def test_wall_tampered_meter_counts_as_exhausted(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await read(
                c, "/articles/alpha", headers={"cookie": "cg_meter=forged.value.here"}
            )

    response = run(scenario())
    assert hidden_markers(response.text) == []
    assert 'data-cg-reason="meter_tampered"' in response.text


def test_wall_app_header_overrides_rules_and_is_removed(tmp_path: Path) -> None:
    app = ArticleApp()
    app.extra_headers = [
        (b"consentgate-access", b"registered"),
        (b"consentgate-article-id", b"story-1"),
    ]

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(c, "/free/alpha")

    response = run(scenario())
    assert hidden_markers(response.text) == []
    assert "consentgate-access" not in response.headers
    assert "consentgate-article-id" not in response.headers


def test_wall_meter_with_server_store_survives_cleared_cookies(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        gate = wall_gate(
            ArticleApp(), tmp_path, wall={"meter": {"store": "server", "network_limit": 3}}
        )
        for slug in ("alpha", "bravo", "charlie"):
            async with client(gate) as fresh:  # a new private window each time
                assert full_text_present((await read(fresh, f"/articles/{slug}")).text, slug)
        async with client(gate) as fresh:
            return await read(fresh, "/articles/delta")

    assert hidden_markers(run(scenario()).text) == []


def test_wall_meter_cookie_in_refused_category_means_no_free_articles(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(
            wall_gate(ArticleApp(), tmp_path, wall={"meter": {"category": "preferences"}})
        ) as c:
            return await read(c, "/articles/alpha")

    response = run(scenario())
    assert hidden_markers(response.text) == []


# -- the cut, and every way around it ---------------------------------------------


def _chunkings() -> Sequence[int | None]:
    return (None, 1, 7, random.Random(4).randint(20, 400))


@pytest.mark.parametrize("chunk_size", _chunkings())
def test_wall_cut_text_absent_for_every_chunking(tmp_path: Path, chunk_size: int | None) -> None:
    app = ArticleApp()
    app.chunk_size = chunk_size

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(c, "/premium/bravo")

    response = run(scenario())
    assert hidden_markers(response.content) == []
    assert response.text.count('id="consentgate-cta"') == 1
    assert response.text.endswith(
        "<footer>Also read</footer></article>" + response.text.split("</article>")[-1]
    )
    assert "The Test Gazette" in response.text


def test_wall_output_identical_across_chunkings(tmp_path: Path) -> None:
    outputs = set()
    for chunk_size in _chunkings():
        app = ArticleApp()
        app.chunk_size = chunk_size

        async def scenario(app: ArticleApp = app) -> bytes:
            async with client(wall_gate(app, tmp_path)) as c:
                response = await read(
                    c, "/premium/bravo", headers={"cookie": "cg_consent=x; cg_csrf=fixed"}
                )
            return re.sub(rb'value="[^"]*"', b'value=""', response.content)

        outputs.add(run(scenario()))
    assert len(outputs) == 1


def test_wall_jsonld_scrubbed_when_cut_and_paywall_markup_always(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            full = await read(c, "/articles/alpha")
            cut = await read(c, "/premium/alpha")
        return full, cut

    full, cut = run(scenario())
    for response in (full, cut):
        match = re.search(r'<script type="application/ld\+json">(.*?)</script>', response.text)
        assert match
        data = json.loads(match.group(1))
        assert data["isAccessibleForFree"] is False
        assert data["hasPart"]["cssSelector"] == ".article-body"
    assert "articleBody" not in cut.text
    assert "articleBody" in full.text


def test_wall_extra_selectors_removed_on_gated_pages(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await read(c, "/premium/alpha")

    text = run(scenario()).text
    assert 'rel="amphtml"' not in text
    assert "data-consentgate-remove" not in text


def test_wall_gzip_inner_response_is_decoded_and_cut(tmp_path: Path) -> None:
    app = ArticleApp()
    app.encoding = "gzip"
    app.chunk_size = 50

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await c.get("/premium/charlie", headers={"accept-encoding": "identity"})

    response = run(scenario())
    assert "content-encoding" not in response.headers
    assert hidden_markers(response.content) == []
    assert 'id="consentgate-cta"' in response.text


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br"])
def test_wall_unknown_encoding_fails_closed_to_wall_page(tmp_path: Path, encoding: str) -> None:
    app = ArticleApp()
    app.encoding = encoding
    app.body_override = article_html("echo").encode()  # "compressed" as far as headers go

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await c.get("/premium/echo", headers={"accept-encoding": "identity"})

    response = run(scenario())
    assert response.status_code == 200
    assert hidden_markers(response.content) == []
    assert "Paragraph" not in response.text
    assert 'id="consentgate-cta"' in response.text
    assert "content-encoding" not in response.headers


def test_wall_selector_not_found_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> httpx.Response:
        gate = wall_gate(ArticleApp(), tmp_path, wall={"article_selector": "div.story-text"})
        async with client(gate) as c:
            return await read(c, "/premium/alpha")

    with caplog.at_level("ERROR", logger="consentgate"):
        response = run(scenario())
    assert hidden_markers(response.content) == []
    assert "Paragraph" not in response.text
    assert 'id="consentgate-cta"' in response.text
    assert any(
        "/premium/alpha" in r.getMessage() and "container" in r.getMessage() for r in caplog.records
    )


def test_wall_undecodable_charset_fails_closed(tmp_path: Path) -> None:
    app = ArticleApp()
    app.content_type = b"text/html; charset=utf-16"
    app.body_override = article_html("alpha").encode("utf-16")

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(c, "/premium/alpha")

    response = run(scenario())
    assert "HIDDEN" not in response.content.decode("utf-16", "ignore")
    assert hidden_markers(response.content) == []
    assert 'id="consentgate-cta"' in response.text


def test_wall_non_html_article_fails_closed(tmp_path: Path) -> None:
    app = ArticleApp()
    app.content_type = b"application/json"
    app.body_override = json.dumps({"body": paragraph("alpha", 5)}).encode()

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await c.get("/premium/alpha")

    response = run(scenario())
    assert hidden_markers(response.content) == []
    assert response.headers["content-type"].startswith("text/html")


def test_wall_head_reveals_no_length(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await c.head("/premium/alpha")

    response = run(scenario())
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.content == b""


def test_wall_range_request_gets_whole_truncated_page(tmp_path: Path) -> None:
    app = ArticleApp()

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(
                c, "/premium/alpha", headers={"range": "bytes=900-", "if-range": '"v1"'}
            )

    response = run(scenario())
    assert b"range" not in app.seen_headers[-1]
    assert b"if-range" not in app.seen_headers[-1]
    assert response.status_code == 200
    assert hidden_markers(response.content) == []
    assert "accept-ranges" not in response.headers


def test_wall_route_level_kept_per_path_still_walls_every_request(tmp_path: Path) -> None:
    # The rules' level of a path is kept after its first request: the next requests of
    # the same paths are walled (and asked for whole pages) or left free all the same.
    app = ArticleApp()

    async def scenario() -> list[httpx.Response]:
        async with client(wall_gate(app, tmp_path)) as c:
            responses = []
            for _ in range(3):
                for path in ("/premium/alpha", "/free/alpha"):
                    responses.append(await read(c, path, headers={"range": "bytes=900-"}))
            return responses

    responses = run(scenario())
    walled, free = responses[0::2], responses[1::2]
    for response in walled:
        assert response.status_code == 200
        assert hidden_markers(response.content) == []
    assert b"range" not in app.seen_headers[-2]
    assert b"range" in app.seen_headers[-1]
    assert all(response.status_code == 200 for response in free)


def test_wall_partial_content_from_app_fails_closed(tmp_path: Path) -> None:
    app = ArticleApp()
    app.status = 206
    app.extra_headers = [(b"consentgate-access", b"registered")]
    app.body_override = article_html("alpha").encode()[800:]

    async def scenario() -> httpx.Response:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(c, "/elsewhere/alpha", headers={"range": "bytes=800-"})

    response = run(scenario())
    assert response.status_code == 200
    assert hidden_markers(response.content) == []
    assert 'id="consentgate-cta"' in response.text


def test_wall_cache_headers_keep_copies_private(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await read(c, "/articles/alpha"), await read(c, "/premium/alpha")

    full, cut = run(scenario())
    for response in (full, cut):
        assert "Cookie" in response.headers["vary"]
        assert "etag" not in response.headers
        assert "last-modified" not in response.headers
        assert "accept-ranges" not in response.headers
        assert "public" not in response.headers["cache-control"]
        assert int(response.headers["content-length"]) == len(response.content)
    assert cut.headers["cache-control"] == "private, no-store"
    assert full.headers["cache-control"].startswith("private")


@pytest.mark.parametrize(
    "headers",
    [
        {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"referer": "https://www.google.com/"},
        {"x-forwarded-for": "66.249.66.1"},
        {
            "user-agent": "Googlebot",
            "referer": "https://www.google.com/",
            "x-forwarded-for": "66.249.66.1",
        },
    ],
    ids=["user-agent", "referer", "forwarded-for", "all"],
)
def test_wall_spoofed_crawler_headers_get_the_wall(tmp_path: Path, headers: dict[str, str]) -> None:
    async def scenario() -> httpx.Response:
        async with client(
            wall_gate(
                ArticleApp(),
                tmp_path,
                wall={"crawlers": {"enabled": True}},
                crawler_resolver=_GoogleResolver(),
            )
        ) as c:
            return await read(c, "/premium/alpha", headers=headers)

    assert hidden_markers(run(scenario()).content) == []


class _GoogleResolver:
    """DNS as Google's would answer for one crawler address (no DNS on this machine)."""

    def __init__(self) -> None:
        self.lookups = 0

    async def reverse(self, ip: str) -> str | None:
        self.lookups += 1
        return "crawl-66-249-66-1.googlebot.com" if ip == "66.249.66.1" else None

    async def forward(self, name: str) -> Sequence[str]:
        return ["66.249.66.1"] if name == "crawl-66-249-66-1.googlebot.com" else []


def test_wall_verified_crawler_reads_in_full_with_paywall_markup(tmp_path: Path) -> None:
    resolver = _GoogleResolver()

    async def scenario() -> httpx.Response:
        gate = wall_gate(
            ArticleApp(), tmp_path, wall={"crawlers": {"enabled": True}}, crawler_resolver=resolver
        )
        transport = httpx.ASGITransport(app=gate, client=("66.249.66.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://news.test") as c:
            await read(c, "/premium/alpha")
            return await read(c, "/premium/bravo")

    response = run(scenario())
    assert full_text_present(response.text, "bravo")
    assert (
        '"isAccessibleForFree": false' in response.text
        or '"isAccessibleForFree":false' in response.text
    )
    assert resolver.lookups == 1  # the second request was answered from the cache


def test_wall_page_still_gets_the_consent_banner(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            return await read(c, "/premium/alpha")

    text = run(scenario()).text
    assert 'id="consentgate-banner"' in text
    assert 'id="consentgate-cta"' in text


# -- registration, sign-in, the policy ---------------------------------------------


def test_wall_register_then_read_in_full_then_logout_metered_again(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, httpx.Response, str, str]:
        async with client(wall_gate(ArticleApp(), tmp_path)) as c:
            for slug in ("alpha", "bravo", "charlie"):
                await read(c, f"/articles/{slug}")
            walled = (await read(c, "/articles/delta")).text
            registered = await register(c, next_url="/articles/delta")
            signed_in = (await read(c, "/articles/delta")).text
            token = CSRF_FIELD.search((await c.get("/consentgate/login")).text)
            assert token
            await c.post("/consentgate/logout", data={"csrf_token": token.group(1), "next": "/"})
            signed_out = (await read(c, "/articles/echo")).text
        return walled, registered, signed_in, signed_out

    walled, registered, signed_in, signed_out = run(scenario())
    assert hidden_markers(walled) == []
    assert registered.status_code == 303
    assert registered.headers["location"] == "/articles/delta"
    assert "HttpOnly" in next(
        h for h in registered.headers.get_list("set-cookie") if h.startswith("cg_session=")
    )
    assert full_text_present(signed_in, "delta")
    assert hidden_markers(signed_out) == []


def test_wall_policy_bump_asks_registered_reader_to_accept_again(tmp_path: Path) -> None:
    app = ArticleApp()

    async def scenario() -> tuple[str, str, int, str]:
        async with client(wall_gate(app, tmp_path, policy={"version": "1"})) as c:
            await register(c)
            before = (await read(c, "/premium/alpha")).text
            c._transport = httpx.ASGITransport(
                app=wall_gate(app, tmp_path, policy={"version": "2"})
            )
            prompt = (await read(c, "/premium/alpha")).text
            form = await c.get("/consentgate/policy?next=/premium/alpha")
            token = CSRF_FIELD.search(form.text)
            assert token
            accepted = await c.post(
                "/consentgate/policy",
                data={
                    "accept_policy": "yes",
                    "csrf_token": token.group(1),
                    "next": "/premium/alpha",
                },
            )
            after = (await read(c, "/premium/alpha")).text
        return before, prompt, accepted.status_code, after

    before, prompt, status, after = run(scenario())
    assert full_text_present(before, "alpha")
    assert hidden_markers(prompt) == []
    assert 'data-cg-reason="policy_acceptance_needed"' in prompt
    assert status == 303
    assert full_text_present(after, "alpha")
    import sqlite3

    rows = (
        sqlite3.connect(tmp_path / "ledger.db")
        .execute(
            "SELECT policy_version, method FROM acceptances"
            " WHERE purpose = 'privacy_policy' ORDER BY id"
        )
        .fetchall()
    )
    assert rows == [("1", "registration"), ("2", "re-acceptance")]


def test_wall_site_accounts_via_user_resolver_and_acceptance_api(tmp_path: Path) -> None:
    """A site with its own accounts: it says who is signed in and records acceptances."""
    articles = ArticleApp()

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/signup":  # the site's own sign-up, recording the acceptance
            gate = scope["state"]["consentgate"]
            await gate.record_policy_acceptance(scope, "site-user-7")
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await articles(scope, receive, send)

    async def resolver(scope: Any) -> str | None:
        cookies = dict(scope["headers"]).get(b"cookie", b"").decode()
        return "site-user-7" if "site_user=7" in cookies else None

    async def scenario() -> tuple[str, str, str]:
        config = Config.from_mapping(
            {
                "secret_keys": [SECRET],
                "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
                "accounts": {"enabled": False},
                "wall": {
                    "rules": [{"path": "/premium/*", "access": "registered"}],
                    "register_url": "/join",
                    "login_url": "/sign-in",
                },
            }
        )
        gate = ConsentGate(site, config=config, user_resolver=resolver)
        async with client(gate) as c:
            anonymous = (await read(c, "/premium/alpha")).text
            signed_in = await read(c, "/premium/alpha", headers={"cookie": "site_user=7"})
            await c.get("/signup", headers={"cookie": "site_user=7"})
            accepted = await read(c, "/premium/alpha", headers={"cookie": "site_user=7"})
        return anonymous, signed_in.text, accepted.text

    anonymous, before_acceptance, after_acceptance = run(scenario())
    assert hidden_markers(anonymous) == []
    assert 'href="/join?next=/premium/alpha"' in anonymous
    assert hidden_markers(before_acceptance) == []
    assert 'data-cg-reason="policy_acceptance_needed"' in before_acceptance
    assert full_text_present(after_acceptance, "alpha")


def test_wall_server_meter_prunes_reads_older_than_the_period(tmp_path: Path) -> None:
    import asyncio
    import sqlite3
    from datetime import UTC, datetime, timedelta

    async def scenario() -> int:
        gate = wall_gate(ArticleApp(), tmp_path, wall={"meter": {"store": "server"}})
        await gate.ledger.ensure_open()
        old = datetime.now(UTC) - timedelta(days=90)
        await gate.ledger.storage.record_read("reader:old", "article:old", old)
        async with client(gate) as c:
            await read(c, "/articles/alpha")
        for _ in range(50):  # the prune runs in the background
            rows = (
                sqlite3.connect(tmp_path / "ledger.db")
                .execute("SELECT count(*) FROM meter_reads WHERE reader_key = 'reader:old'")
                .fetchone()[0]
            )
            if rows == 0:
                break
            await asyncio.sleep(0.05)
        return int(rows)

    assert run(scenario()) == 0


def test_wall_session_of_an_erased_account_reads_as_anonymous(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        gate = wall_gate(ArticleApp(), tmp_path)
        async with client(gate) as c:
            await register(c, email="gone@example.org")
            before = (await read(c, "/premium/alpha")).text
            user = await gate.ledger.storage.user_by_email("gone@example.org")
            assert user is not None
            await gate.ledger.storage.delete_user(user.id)  # `consentgate forget user`
            gate.sessions.forget_cached()  # as if the seconds of caching had passed
            after = (await read(c, "/premium/alpha")).text
        return before, after

    before, after = run(scenario())
    assert full_text_present(before, "alpha")
    assert hidden_markers(after) == []


@pytest.mark.parametrize(
    ("app_vary", "expected"),
    [
        ([], "Cookie, Sec-Fetch-Dest"),
        ([b"Accept-Encoding"], "Accept-Encoding, Cookie, Sec-Fetch-Dest"),
        (
            [b"accept-encoding, cookie", b"Accept-Language"],
            "accept-encoding, cookie, Accept-Language, Sec-Fetch-Dest",
        ),
        ([b"*"], "*"),
    ],
)
def test_wall_vary_names_each_once(tmp_path: Path, app_vary: list[bytes], expected: str) -> None:
    # Several steps mark a walled response as per reader; each used to append "Cookie"
    # (Vary: Cookie, Cookie, Cookie). The app's own names stay, in one header line.
    app = ArticleApp()
    app.extra_headers = [(b"vary", value) for value in app_vary]

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(wall_gate(app, tmp_path)) as c:
            return await read(c, "/articles/alpha"), await read(c, "/premium/alpha")

    full, cut = run(scenario())
    assert 'id="consentgate-cta"' in cut.text
    assert full_text_present(full.text, "alpha")
    for response in (full, cut):
        assert response.headers.get_list("vary") == [expected]


def test_wall_path_rewritten_in_place_by_the_app_is_decided_again(tmp_path: Path) -> None:
    # The route rules' level is worked out once before the app runs; an app (a router)
    # that changes scope["path"] in place has its response judged by the new path.
    articles = ArticleApp()

    async def rewriting_router(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/free/"):
            scope["path"] = "/premium/" + scope["path"].removeprefix("/free/")
        await articles(scope, receive, send)

    async def scenario() -> httpx.Response:
        async with client(wall_gate(rewriting_router, tmp_path)) as c:
            return await read(c, "/free/alpha")

    response = run(scenario())
    assert hidden_markers(response.text) == []
    assert 'data-cg-reason="registration_required"' in response.text


def test_wall_path_rewritten_in_place_to_a_walled_one_never_passes_other_content_through(
    tmp_path: Path,
) -> None:
    # The same router in front of a walled route that answers JSON: what is not HTML
    # cannot be cut, so the reader gets the wall page, not the JSON; the pass-through
    # shortcut must not trust the level of the path the request came in on.
    secret = b'{"articleBody": "HID0001DEN the whole text"}'

    async def json_app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": secret})

    async def rewriting_router(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/free/"):
            scope["path"] = "/premium/" + scope["path"].removeprefix("/free/")
        await json_app(scope, receive, send)

    async def scenario() -> httpx.Response:
        async with client(wall_gate(rewriting_router, tmp_path)) as c:
            return await read(c, "/free/alpha")

    response = run(scenario())
    assert b"HID0001DEN" not in response.content
    assert 'data-cg-reason="registration_required"' in response.text
