"""The demo news site (examples/newsroom) on its own, without consentgate (wrap=False).

Tests of the wrapped site belong with the middleware's tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.newsroom.app import create_app  # noqa: E402
from examples.newsroom.articles import all_articles  # noqa: E402
from examples.newsroom.templates import ANALYTICS_TAG, render_markdown  # noqa: E402

STATIC = REPO_ROOT / "examples" / "newsroom" / "static"
SLUGS = [a.slug for a in all_articles()]


class Page(HTMLParser):
    """Just enough structure for these tests, with the standard library's parser."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.h1: list[str] = []
        self.standfirst: list[str] = []
        self.body_paragraphs: list[str] = []
        self.json_ld: list[str] = []
        self.landmarks: list[tuple[str, bool]] = []  # (class, inside div.article-body)
        self._stack: list[str] = []
        self._body_depth: int | None = None
        self._capture: list[str] | None = None
        self._buffer: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        classes = attributes.get("class", "").split()
        inside = self._body_depth is not None
        for name in ("why-it-matters", "article-body", "also-read", "author-note", "newsletter"):
            if name in classes:
                self.landmarks.append((name, inside))
        if tag in ("meta", "link", "input", "br", "img"):
            return
        self._stack.append(tag)
        if tag == "div" and "article-body" in classes and self._body_depth is None:
            self._body_depth = len(self._stack)
        if tag == "h1":
            self._start(self.h1)
        elif tag == "p" and "standfirst" in classes:
            self._start(self.standfirst)
        elif tag == "p" and inside:
            self._start(self.body_paragraphs)
        elif tag == "script" and attributes.get("type") == "application/ld+json":
            self._start(self.json_ld)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "p", "script") and self._capture is not None:
            self._capture.append("".join(self._buffer).strip())
            self._capture = None
        if self._stack and self._stack[-1] == tag:
            if self._body_depth == len(self._stack):
                self._body_depth = None
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._buffer.append(data)

    def _start(self, target: list[str]) -> None:
        self._capture = target
        self._buffer = []

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in wanted.items())
        ]


def fetch(
    *requests: tuple[str, str], cookies: dict[str, str] | None = None, data: Any = None
) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        app = create_app(None, wrap=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=cookies
        ) as client:
            return [
                await client.request(method, url, data=data, follow_redirects=False)
                for method, url in requests
            ]

    return asyncio.run(run())


def get(path: str, **kwargs: Any) -> httpx.Response:
    return fetch(("GET", path), **kwargs)[0]


@pytest.fixture(scope="module")
def pages() -> dict[str, httpx.Response]:
    paths = ["/", "/privacy", *(f"/articles/{slug}" for slug in SLUGS)]
    return dict(zip(paths, fetch(*(("GET", p) for p in paths)), strict=True))


def test_create_app_signature_takes_a_data_dir(tmp_path: Path) -> None:
    async def run() -> int:
        transport = httpx.ASGITransport(app=create_app(tmp_path, wrap=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/")).status_code

    assert asyncio.run(run()) == 200


def test_home_lists_at_least_eight_articles(pages: dict[str, httpx.Response]) -> None:
    response = pages["/"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Page(response.text)
    linked = {a["href"] for a in page.find("a") if a.get("href", "").startswith("/articles/")}
    assert len(linked) >= 8
    assert linked == {f"/articles/{slug}" for slug in SLUGS}
    for article in all_articles():
        assert article.author.name in response.text
        assert article.section in response.text


def test_article_access_levels() -> None:
    levels = [a.access for a in all_articles()]
    assert levels.count("free") == 1
    assert levels.count("registered") == 1
    assert set(levels) == {"free", "metered", "registered"}


@pytest.mark.parametrize("slug", SLUGS)
def test_article_page(slug: str, pages: dict[str, httpx.Response]) -> None:
    article = next(a for a in all_articles() if a.slug == slug)
    response = pages[f"/articles/{slug}"]
    assert response.status_code == 200
    assert response.headers["consentgate-access"] == article.access
    assert response.headers["consentgate-article-id"] == slug
    page = Page(response.text)

    assert page.h1 == [article.headline]
    assert page.standfirst == [article.standfirst]
    assert len(page.body_paragraphs) >= 8
    assert page.body_paragraphs == list(article.paragraphs)

    # "Why it matters" before the body; the rest after it, outside the container.
    names = [name for name, _ in page.landmarks]
    assert names == ["why-it-matters", "article-body", "also-read", "author-note", "newsletter"]
    assert not any(inside for _, inside in page.landmarks)

    (ld_text,) = page.json_ld
    data = json.loads(ld_text)
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == article.headline
    assert data["datePublished"] == article.published.isoformat()
    assert data["author"]["name"] == article.author.name
    assert data["articleBody"] == "\n\n".join(article.paragraphs)


@pytest.mark.parametrize("path", ["/", "/privacy", f"/articles/{SLUGS[0]}"])
def test_every_page_carries_the_demo_trackers(path: str, pages: dict[str, httpx.Response]) -> None:
    response = pages[path]
    assert ANALYTICS_TAG in response.text
    assert (
        '<script type="text/plain" data-consent="analytics" '
        'data-src="/static/demo-analytics.js"></script>'
    ) in response.text
    cookies = response.headers.get_list("set-cookie")
    (ad_cookie,) = [c for c in cookies if c.startswith("demo_ad_id=")]
    assert re.fullmatch(
        r"demo_ad_id=[0-9a-f]{32}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax", ad_cookie
    )
    assert 'href="/privacy"' in response.text


def test_article_video_is_gated_by_marketing(pages: dict[str, httpx.Response]) -> None:
    page = Page(pages[f"/articles/{SLUGS[0]}"].text)
    (iframe,) = page.find("iframe")
    assert iframe["data-consent"] == "marketing"
    assert iframe["data-src"] == "/static/embed.html"
    assert "src" not in iframe
    assert iframe["title"]


def test_ad_id_is_kept_when_the_browser_sends_it_back() -> None:
    known = "0123456789abcdef0123456789abcdef"
    response = get("/", cookies={"demo_ad_id": known})
    assert f"demo_ad_id={known};" in response.headers["set-cookie"]


def test_no_external_resources(pages: dict[str, httpx.Response]) -> None:
    for path, response in pages.items():
        for tag, attrs in Page(response.text).tags:
            for name in ("src", "href", "data-src", "action"):
                value = attrs.get(name)
                if value is not None:
                    assert value.startswith(("/", "#")), (path, tag, name, value)
    css = (STATIC / "site.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert "url(" not in css
    assert "http" not in (STATIC / "embed.html").read_text(encoding="utf-8")


def test_static_files_are_served() -> None:
    css, js, embed = fetch(
        ("GET", "/static/site.css"),
        ("GET", "/static/demo-analytics.js"),
        ("GET", "/static/embed.html"),
    )
    assert css.status_code == js.status_code == embed.status_code == 200
    assert "text/css" in css.headers["content-type"]
    assert "demo_analytics_id=" in js.text
    assert "window.demoAnalyticsRan = true" in js.text
    assert "analytics active" in js.text
    assert "path=/" in js.text and "max-age=" in js.text
    assert "set-cookie" not in css.headers


def test_privacy_policy_renders(pages: dict[str, httpx.Response]) -> None:
    response = pages["/privacy"]
    assert response.status_code == 200
    page = Page(response.text)
    assert page.h1 == ["Privacy policy"]
    for cookie in ("demo_analytics_id", "demo_ad_id", "demo_text_size", "cg_consent"):
        assert f"<code>{cookie}</code>" in response.text
    assert "demo" in response.text.lower()
    assert page.find("h2", id="cookies")
    assert page.find("ul")


def test_markdown_subset_escapes_and_drops_unsafe_links() -> None:
    html = render_markdown(
        "# Title <x>\n\nSome *em* and **strong** and `code`.\n"
        "Wrapped line [ok](/privacy) [bad](javascript:alert(1)).\n\n"
        "- one\n  continued\n- two\n\n1. first\n2. second\n\n## Named {#here}\n"
    )
    assert '<h1 id="title-x">Title &lt;x&gt;</h1>' in html
    assert "<em>em</em>" in html and "<strong>strong</strong>" in html
    assert "<code>code</code>" in html
    assert '<a href="/privacy">ok</a>' in html
    assert "bad" in html
    assert 'href="javascript' not in html
    assert "<ul>\n<li>one continued</li>\n<li>two</li>\n</ul>" in html
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert '<h2 id="here">Named</h2>' in html


def test_unknown_article_is_404() -> None:
    response = get("/articles/no-such-story")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "consentgate-access" not in response.headers


def test_sections_list_their_articles() -> None:
    response = get("/sections/business")
    assert response.status_code == 200
    for article in all_articles():
        assert (article.url in response.text) == (article.section == "Business")
    assert get("/sections/sport").status_code == 404


def test_article_texts_are_distinct() -> None:
    articles = all_articles()
    assert 8 <= len(articles) <= 12
    paragraphs = [p for a in articles for p in a.paragraphs]
    assert len(set(paragraphs)) == len(paragraphs)
    assert len({a.headline for a in articles}) == len(articles)
    assert len({a.standfirst for a in articles}) == len(articles)
    for article in articles:
        assert 8 <= len(article.paragraphs) <= 12
        assert article.why_it_matters


def test_text_size_preference_cookie() -> None:
    redirect, bad, offsite = fetch(
        ("GET", "/prefs?size=large&next=/articles/" + SLUGS[0]),
        ("GET", "/prefs?size=huge"),
        ("GET", "/prefs?size=small&next=//evil.example/"),
    )
    assert redirect.status_code == 303
    assert redirect.headers["location"] == f"/articles/{SLUGS[0]}"
    assert redirect.headers["set-cookie"] == (
        "demo_text_size=large; Path=/; Max-Age=31536000; SameSite=Lax"
    )
    assert bad.status_code == 400
    assert offsite.headers["location"] == "/"
    assert 'class="text-large"' in get("/", cookies={"demo_text_size": "large"}).text
    assert 'class="text-normal"' in get("/", cookies={"demo_text_size": "<x>"}).text


def test_newsletter_form_stores_nothing() -> None:
    (response,) = fetch(("POST", "/newsletter"), data={"email": "reader@example.org"})
    assert response.status_code == 200
    assert "has not been stored" in response.text


def test_pages_are_well_formed_enough(pages: dict[str, httpx.Response]) -> None:
    for html in (response.text for response in pages.values()):
        assert html.startswith("<!doctype html>")
        assert html.count("<main") == html.count("</main>") == 1
        assert html.count("<article") == html.count("</article>")


def test_demo_mailbox_shows_the_mail_consentgate_sent_with_its_links(tmp_path: Path) -> None:
    # The demo's mail goes to files under the data directory, and its mailbox page shows
    # them: a reader registering with a newsletter ticked finds the confirmation there.
    async def scenario() -> tuple[str, str]:
        app = create_app(tmp_path)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            before = (await c.get("/_demo/mailbox")).text
            form = await c.get("/consentgate/register", headers={"accept": "text/html"})
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            lists = re.findall(r'name="newsletters" value="([^"]+)"', form.text)
            assert lists, "the demo offers its newsletters at registration"
            answer = await c.post(
                "/consentgate/register",
                data={
                    "email": "demo-reader@example.org",
                    "password": "a long enough passphrase",
                    "accept_policy": "yes",
                    "newsletters": lists[0],
                    "csrf_token": token.group(1),
                    "next": "/",
                },
            )
            assert answer.status_code in (200, 303), answer.text[:300]
            for _ in range(100):  # the sender was woken; give it up to 10 s
                after = (await c.get("/_demo/mailbox")).text
                if "demo-reader@example.org" in after:
                    break
                await asyncio.sleep(0.1)
            return before, after

    before, after = asyncio.run(scenario())
    assert "No mail yet" in before
    assert "To demo-reader@example.org" in after
    assert re.search(
        r'<a href="http://127\.0\.0\.1:8000/consentgate/newsletters/confirm\?token=', after
    )
    assert list((tmp_path / "mail").glob("*.eml"))
