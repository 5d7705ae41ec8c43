"""The Harbour Ledger: a small Starlette news site with the trackers real ones carry.

``create_app()`` returns the site wrapped in :class:`consentgate.ConsentGate`;
``create_app(wrap=False)`` returns the bare site, trackers and all, which is what a
publisher has before installing consentgate. The trackers are demo stand-ins:

* ``demo_ad_id`` — an HttpOnly advertising cookie the server sets on every HTML page
  (category *marketing*; JavaScript consent banners cannot delete it, consentgate can);
* ``/static/demo-analytics.js`` — an analytics script, inert until *analytics* consent,
  that sets ``demo_analytics_id`` and shows an "analytics active" badge;
* ``demo_text_size`` — a *preferences* cookie set by the text-size links (``/prefs``);
* a video iframe from a pretend partner, loaded only with *marketing* consent.
"""

from __future__ import annotations

import dataclasses
import email
import email.message
import email.policy
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from . import templates
from .articles import all_articles, get_article

if TYPE_CHECKING:  # the bare site imports nothing of consentgate
    from consentgate.mail.settings import MailSettings

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
CONFIG_PATH = HERE / "consentgate.toml"
POLICY_PATH = HERE / "privacy-policy.md"
DEFAULT_DATA_DIR = Path("demo-data")

AD_COOKIE = "demo_ad_id"
TEXT_SIZE_COOKIE = "demo_text_size"
ONE_YEAR = 31_536_000
_AD_ID = re.compile(r"^[0-9a-f]{32}$")

ACCESS_HEADER = "Consentgate-Access"
#: The page shell of consentgate's own pages (consentgate.toml: [pages] layout_path).
LAYOUT_PATH = "/_consentgate/layout"
ARTICLE_ID_HEADER = "Consentgate-Article-Id"


def _text_size(request: Request) -> str:
    size = request.cookies.get(TEXT_SIZE_COOKIE, "normal")
    return size if size in templates.TEXT_SIZES else "normal"


def _html(
    request: Request,
    content: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """An HTML page, carrying the advertising cookie like a real ad tag would.

    The id is reused when the browser sends it back, so it tracks the reader across
    pages; the cookie is re-sent every time to push its expiry forward.
    """
    response = HTMLResponse(content, status_code=status_code, headers=headers)
    ad_id = request.cookies.get(AD_COOKIE, "")
    if not _AD_ID.match(ad_id):
        ad_id = secrets.token_hex(16)
    response.headers.append(
        "set-cookie", f"{AD_COOKIE}={ad_id}; Path=/; Max-Age={ONE_YEAR}; HttpOnly; SameSite=Lax"
    )
    return response


async def home(request: Request) -> Response:
    return _html(request, templates.home_page(text_size=_text_size(request)))


async def article(request: Request) -> Response:
    slug = request.path_params["slug"]
    found = get_article(slug)
    if found is None:
        raise HTTPException(status_code=404)
    return _html(
        request,
        templates.article_page(found, text_size=_text_size(request)),
        headers={ACCESS_HEADER: found.access, ARTICLE_ID_HEADER: found.slug},
    )


async def section(request: Request) -> Response:
    name = request.path_params["name"]
    for title in templates.SECTIONS:
        if templates.section_slug(title) == name:
            articles = [a for a in all_articles() if a.section == title]
            return _html(
                request, templates.section_page(title, articles, text_size=_text_size(request))
            )
    raise HTTPException(status_code=404)


async def prefs(request: Request) -> Response:
    """Remember the reader's text size (a *preferences* cookie), then go back."""
    size = request.query_params.get("size", "")
    if size not in templates.TEXT_SIZES:
        return _html(
            request,
            templates.message_page(
                "Unknown text size",
                f"Choose one of: {', '.join(templates.TEXT_SIZES)}.",
                path="/prefs",
                text_size=_text_size(request),
            ),
            status_code=400,
        )
    target = request.query_params.get("next", "/")
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        target = "/"  # never redirect off-site
    response = RedirectResponse(target, status_code=303)
    response.headers.append(
        "set-cookie", f"{TEXT_SIZE_COOKIE}={size}; Path=/; Max-Age={ONE_YEAR}; SameSite=Lax"
    )
    return response


async def newsletter(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    email = form.get("email", [""])[0].strip()
    message = (
        f"Thank you. This is a demo, so {email} has not been stored or sent anywhere."
        if email
        else "Please give an email address."
    )
    return _html(
        request,
        templates.message_page(
            "The Ledger Morning", message, path="/newsletter", text_size=_text_size(request)
        ),
        status_code=200 if email else 400,
    )


def _privacy(policy_markdown: str) -> Route:
    async def privacy(request: Request) -> Response:
        return _html(
            request, templates.privacy_page(policy_markdown, text_size=_text_size(request))
        )

    return Route("/privacy", privacy, methods=["GET"])


async def shell(request: Request) -> Response:
    """consentgate's pages in the site's look: it fetches this page in-process (see
    ``[pages]`` in consentgate.toml) and sets its own content into the marked <main>."""
    return HTMLResponse(templates.shell_page())


async def not_found(request: Request, exc: Exception) -> Response:
    return _html(
        request,
        templates.message_page(
            "Page not found",
            "We could not find that page. It may have moved, or the link may be mistyped.",
            path=request.url.path,
            text_size=_text_size(request),
        ),
        status_code=404,
    )


def _mailbox(mail_dir: Path | None) -> Route:
    async def mailbox(request: Request) -> Response:
        messages = _read_mail(mail_dir) if mail_dir is not None else []
        page = templates.mailbox_page(
            messages, path=request.url.path, text_size=_text_size(request)
        )
        return _html(request, page)

    return Route("/_demo/mailbox", mailbox, methods=["GET"])


def _read_mail(mail_dir: Path, limit: int = 30) -> list[dict[str, str]]:
    """The newest ``limit`` .eml files the directory transport wrote: subject, recipient,
    date and the plain-text part."""
    if not mail_dir.is_dir():
        return []
    files = sorted(mail_dir.glob("*.eml"), key=lambda f: f.stat().st_mtime, reverse=True)
    found = []
    for path in files[:limit]:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if isinstance(body, email.message.EmailMessage) else ""
        found.append(
            {
                "subject": str(message.get("subject", "")),
                "to": str(message.get("to", "")),
                "date": str(message.get("date", "")),
                "text": str(text),
            }
        )
    return found


def create_site(mail_dir: Path | None = None) -> Starlette:
    """The bare news site, without consentgate; ``mail_dir``: where the demo's mail goes."""
    all_articles()  # parse the content files now, so a broken file fails at start-up
    policy_markdown = POLICY_PATH.read_text(encoding="utf-8")
    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/articles/{slug}", article, methods=["GET"]),
            Route("/sections/{name}", section, methods=["GET"]),
            _privacy(policy_markdown),
            Route("/prefs", prefs, methods=["GET"]),
            Route(LAYOUT_PATH, shell, methods=["GET"]),
            Route("/newsletter", newsletter, methods=["POST"]),
            _mailbox(mail_dir),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={404: not_found},
    )


def create_app(
    data_dir: Path | None = None, *, wrap: bool = True, mail: MailSettings | None = None
) -> ASGIApp:
    """The demo site; wrapped in consentgate unless ``wrap=False``.

    ``mail``: how consentgate's mail leaves (default: files under ``<data_dir>/mail``,
    shown by the Demo mailbox page; the tests send it to a real SMTP server).

    consentgate's SQLite database goes to ``<data_dir>/consentgate.db`` (default
    ``./demo-data``); the rest of the configuration comes from ``consentgate.toml``
    next to this file.
    """
    directory = (data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
    mail_dir = directory / "mail"
    site = create_site(mail_dir)
    if not wrap:
        return site
    from consentgate import Config, ConsentGate  # lazy: the bare site needs neither

    directory.mkdir(parents=True, exist_ok=True)
    config = Config.from_toml(CONFIG_PATH)
    config = dataclasses.replace(
        config,
        database_url=f"sqlite:///{directory / 'consentgate.db'}",
        # The demo's mail goes to files its mailbox page shows (docs/mail.md: a real
        # site sets [mail] transport = "smtp").
        mail=mail
        or dataclasses.replace(
            config.mail, transport="directory", directory=str(mail_dir), poll_seconds=1.0
        ),
    )
    return ConsentGate(site, config=config)
