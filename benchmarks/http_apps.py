"""The Starlette apps ``bench_http.py`` serves under uvicorn: bare, and wrapped by the gate.

    uvicorn --factory --app-dir benchmarks http_apps:bare
    CONSENTGATE_BENCH_DB=/tmp/x/ledger.db uvicorn --factory --app-dir benchmarks http_apps:gated

Both serve the same three routes with the same bytes as ``bench_middleware.py``'s inner
app (its ``article_html()`` and ``api_json()``), so the in-process and the end-to-end
figures describe the same pages:

* ``/article``          the ~50 KB article, with a ``Set-Cookie: sessionid`` of the site;
* ``/premium/article``  the same article, registration-only in the gate's config, so a
                        reader who is not signed in gets it cut after the lead;
* ``/unique/article``   the article with a token of its own in every response (bytes that
                        differ each time: what the gate's memo of whole pages cannot reuse);
* ``/api/items``        ~2 KB of JSON.

The gated app keeps its ledger in the SQLite file named by ``CONSENTGATE_BENCH_DB``
(the benchmark makes it in a temporary directory and counts the rows afterwards).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench_middleware import SECRET, api_json, article_html
from consentgate import Config, ConsentGate

DB_ENV = "CONSENTGATE_BENCH_DB"
# A storage URL (a PostgreSQL one) instead of the SQLite file, when set.
URL_ENV = "CONSENTGATE_BENCH_DATABASE_URL"

_HTML = article_html()
_JSON = api_json()
# What the article's last paragraph says: a walled response that still carries it was
# not cut. The page is deterministic, so this is the same text in every process.
LAST_PARAGRAPH_MARKER = b'data-index="39"'

# The gate's config: bench_middleware.py's, so the two benchmarks gate the same page the
# same way (same cookie registry, same wall rule and article container).
WALL = {
    "rules": [{"path": "/premium/*", "access": "registered"}],
    "article_selector": "main article",
    "gated_class": "article",
}
COOKIES = [
    {"name": "sessionid", "category": "necessary"},
    {"name": "lang", "category": "preferences"},
    {"name": "_ga", "category": "analytics"},
    {"name": "_ga_*", "category": "analytics"},
    {"name": "_fbp", "category": "marketing"},
]


async def _article(request: Request) -> Response:
    # The site's own session cookie, as a CMS sets one: the gate must let it through.
    return Response(
        _HTML,
        media_type="text/html; charset=utf-8",
        headers={
            "cache-control": "public, max-age=60",
            "set-cookie": "sessionid=abc123; Path=/; HttpOnly; SameSite=Lax",
        },
    )


async def _public_article(request: Request) -> Response:
    # The same article without the site's session cookie: public, so that the gate may
    # let a shared cache keep one copy per consent class (docs/caching.md).
    return Response(
        _HTML,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "public, max-age=60"},
    )


_served = itertools.count()


async def _unique_article(request: Request) -> Response:
    # The article with a token of its own in every response, as a page that embeds a
    # per-request nonce or time is: the gate's memo of whole pages never finds it.
    token = b"<!-- response %d -->" % next(_served)
    return Response(
        _HTML.replace(b"</body>", token + b"</body>", 1),
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "private"},
    )


async def _items(request: Request) -> Response:
    return Response(_JSON, media_type="application/json")


def bare() -> Starlette:
    """The newsroom's app alone."""
    return Starlette(
        routes=[
            Route("/article", _article),
            Route("/premium/article", _article),
            Route("/api/items", _items),
            Route("/public/article", _public_article),
            Route("/unique/article", _unique_article),
        ]
    )


def gate_config(database_path: str, database_url: str | None = None) -> dict[str, Any]:
    return {
        "secret_keys": [SECRET],
        "database_url": database_url or f"sqlite:///{database_path}",
        "cookies": COOKIES,
        "wall": WALL,
    }


def gated() -> ConsentGate:
    """The same app with ConsentGate in front of it (Starlette stays the inner app)."""
    database_path = os.environ.get(DB_ENV)
    if not database_path:
        raise SystemExit(f"set {DB_ENV} to the SQLite file the gate's ledger goes to")
    config = gate_config(database_path, os.environ.get(URL_ENV))
    return ConsentGate(bare(), config=Config.from_mapping(config))
