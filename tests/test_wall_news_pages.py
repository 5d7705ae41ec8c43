"""The wall on real news pages, through the middleware: each manifest page, its selector."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import CORPORA, SECRET, client, corpora_dir, run

from consentgate import Config, ConsentGate


def _manifest() -> list[tuple[str, dict[str, Any]]]:
    path = CORPORA / "news-pages" / "manifest.json"
    if not path.exists():
        return []
    return sorted(json.loads(path.read_text(encoding="utf-8")).items())


def _collapsed(text: str) -> str:
    """Without any whitespace: the manifest joins text nodes without spaces."""
    return "".join(text.split())


class _Text(HTMLParser):
    """Every text node of the page (script text too: some pages repeat the article there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _visible_text(html: bytes) -> str:
    parser = _Text()
    parser.feed(html.decode("utf-8", "replace"))
    parser.close()
    return _collapsed("".join(parser.parts))


def _page_app(page: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(page), 8192):  # streamed, as a real app would
            more = i + 8192 < len(page)
            await send(
                {"type": "http.response.body", "body": page[i : i + 8192], "more_body": more}
            )

    return app


@pytest.mark.corpora
@pytest.mark.parametrize(
    ("name", "entry"), _manifest() or [("absent", {})], ids=lambda v: str(v)[:40]
)
def test_wall_news_page_cut_lacks_last_paragraph(
    tmp_path: Path, name: str, entry: dict[str, Any]
) -> None:
    pages = corpora_dir("news-pages")
    page = (pages / name).read_bytes()
    config = Config.from_mapping(
        {
            "secret_keys": [SECRET],
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
            "wall": {
                "rules": [{"path": "/**", "access": "registered"}],
                "article_selector": entry["article_selector"],
                "gated_class": "article-body",
                "lead_paragraphs": 2,
            },
        }
    )

    async def scenario() -> httpx.Response:
        async with client(ConsentGate(_page_app(page), config=config)) as c:
            return await c.get("/story", headers={"accept": "text/html"})

    response = run(scenario())
    assert response.status_code == 200
    assert response.content.count(b'id="consentgate-cta"') == 1
    assert b"cg-wall-page" not in response.content, "the page was cut, not replaced"
    last = _collapsed(str(entry["last_paragraph_text"]))[:60]
    before = _visible_text(page).count(last)
    after = _visible_text(response.content).count(last)
    assert before >= 1, "test precondition: the page holds its last paragraph"
    # Some pages repeat the paragraph elsewhere (a script, JSON-LD, a teaser); the copy
    # in the article must go. Bytes outside the container are checked unchanged by
    # tests/test_rewrite_corpora.py.
    assert after < before
