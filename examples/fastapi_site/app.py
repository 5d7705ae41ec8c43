"""The Valley Courier: a FastAPI news site with its own accounts, wrapped by consentgate.

Run it:  .venv/bin/uvicorn --factory examples.fastapi_site.app:create_app --port 8001
(data in ./demo-data/fastapi_site; ``create_app(data_dir)`` for another folder).

What it shows:

* articles at ``/articles/{slug}`` that say their own access level with the
  ``Consentgate-Access`` header (one free, one for registered readers, the rest metered);
* ``request.state.consent`` in a JSON endpoint (``/api/recommendations`` is personalised
  only with *preferences* consent) and in a route that sets an analytics cookie only
  when allowed (``/api/pageview``);
* an advertising cookie set on every article *without* asking — consentgate drops it
  until the reader accepts *marketing*;
* the site's own accounts (``/signup``, ``/signin``, ``/signout``, a signed
  ``courier_session`` cookie), told to consentgate with ``user_resolver``; the sign-up
  form's unticked, required privacy-policy box is recorded in consentgate's ledger with
  ``record_policy_acceptance``.
"""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Scope

from consentgate import Config, ConsentGate
from consentgate.storage import StorageError

from .accounts import SESSION_COOKIE, Sessions, UserStore, cookie_from_scope
from .articles import ARTICLES, BY_SLUG, TOPICS, Article

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path("demo-data") / "fastapi_site"

# DEMO ONLY — these keys are public (they are in the source repository). A real site
# generates its own (`consentgate keygen`) and keeps them out of version control, e.g.
# in environment variables.
DEMO_CONSENTGATE_KEY = "demo-only-NOT-SECRET-valley-courier-consentgate-0123456789"
DEMO_SESSION_KEY = "demo-only-NOT-SECRET-valley-courier-sessions-0123456789"

AD_COOKIE = "courier_ad_id"  # marketing
STATS_COOKIE = "courier_stats_id"  # analytics
TOPIC_COOKIE = "courier_topic"  # preferences
ONE_YEAR = 31_536_000
MIN_PASSWORD_LENGTH = 8


def consentgate_config(data_dir: Path) -> Config:
    """The consentgate configuration, in code (a consentgate.toml would hold the same)."""
    return Config.from_mapping(
        {
            "secret_keys": [DEMO_CONSENTGATE_KEY],
            "database_url": f"sqlite:///{data_dir / 'consentgate.db'}",
            "site_name": "The Valley Courier",
            "policy": {
                "version": "2026-01",
                "url": "/privacy",
                "text_file": "privacy-policy.md",  # relative to base_dir below
            },
            "cookies": [
                {"name": SESSION_COOKIE, "category": "necessary"},
                {"name": TOPIC_COOKIE, "category": "preferences"},
                {"name": STATS_COOKIE, "category": "analytics"},
                {"name": AD_COOKIE, "category": "marketing"},
            ],
            # The site has its own accounts: consentgate's are switched off and the
            # wall's call to action points at the site's pages.
            "accounts": {"enabled": False},
            "wall": {
                "article_selector": "div.article-body",
                "lead_paragraphs": 2,
                "register_url": "/signup",
                "login_url": "/signin",
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "meter": {"limit": 3, "period_days": 30},
            },
        },
        base_dir=HERE,
    )


# -- pages ------------------------------------------------------------------------------
def _page(title: str, body: str, *, signed_in: bool = False) -> str:
    account = (
        '<form method="post" action="/signout"><button>Sign out</button></form>'
        if signed_in
        else '<a href="/signin">Sign in</a> · <a href="/signup">Register</a>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} — The Valley Courier</title></head><body>"
        f'<header><a href="/">The Valley Courier</a> <nav>{account}</nav></header>'
        f"<main>{body}</main>"
        '<footer><a href="/privacy">Privacy policy</a></footer></body></html>'
    )


def _article_html(article: Article, *, signed_in: bool) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in article.paragraphs)
    body = (
        f"<article><h1>{html.escape(article.title)}</h1>"
        f'<p class="topic">{html.escape(article.topic)}</p>'
        f'<div class="article-body">{paragraphs}</div></article>'
    )
    return _page(article.title, body, signed_in=signed_in)


def _form_page(
    title: str, action: str, fields: str, *, error: str = "", next_url: str = "/"
) -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        f"<h1>{html.escape(title)}</h1>{message}"
        f'<form method="post" action="{action}">{fields}'
        f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
        f"<button>{html.escape(title)}</button></form>"
    )
    return _page(title, body)


_CREDENTIALS = (
    '<label>E-mail <input type="email" name="email" required></label>'
    '<label>Password <input type="password" name="password" required></label>'
)
_POLICY_BOX = (
    # Unticked and required: consent to the policy must be an active choice.
    '<label><input type="checkbox" name="accept_policy" value="yes" required> '
    'I have read and accept the <a href="/privacy">privacy policy</a></label>'
)


# -- helpers ----------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    """An url-encoded form body (no python-multipart needed for plain forms)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {key: values[0] for key, values in parsed.items()}


def _safe_next(value: str | None) -> str:
    """Only redirect within the site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


def _check_same_origin(request: Request) -> None:
    """A minimal CSRF guard for the account forms (with SameSite=Lax cookies)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status_code=403, detail="cross-site form")


def _with_ad_cookie(request: Request, response: Response) -> Response:
    """Like a careless ad tag: set the advertising id without looking at consent.

    consentgate removes this Set-Cookie until the reader accepts *marketing*.
    """
    ad_id = request.cookies.get(AD_COOKIE) or secrets.token_hex(16)
    response.set_cookie(AD_COOKIE, ad_id, max_age=ONE_YEAR, httponly=True, samesite="lax")
    return response


def create_app(data_dir: Path = DEFAULT_DATA_DIR) -> ASGIApp:
    """The Valley Courier wrapped in consentgate; its databases go to ``data_dir``."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    users = UserStore(data_dir / "users.db")
    sessions = Sessions(DEMO_SESSION_KEY)

    async def current_user(scope: Scope) -> str | None:
        """consentgate's ``user_resolver``: the signed-in user's id, from the raw scope."""
        user_id = sessions.loads(cookie_from_scope(scope, SESSION_COOKIE))
        if user_id is None or not await users.exists(user_id):
            return None
        return user_id

    app = FastAPI(title="The Valley Courier", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        items = "".join(
            f'<li><a href="/articles/{a.slug}">{html.escape(a.title)}</a> ({a.access})</li>'
            for a in ARTICLES
        )
        signed_in = await current_user(request.scope) is not None
        return _with_ad_cookie(
            request, HTMLResponse(_page("Home", f"<ul>{items}</ul>", signed_in=signed_in))
        )

    @app.get("/articles/{slug}", response_class=HTMLResponse)
    async def article(slug: str, request: Request) -> Response:
        found = BY_SLUG.get(slug)
        if found is None:
            raise HTTPException(status_code=404)
        signed_in = await current_user(request.scope) is not None
        response = HTMLResponse(
            _article_html(found, signed_in=signed_in),
            # consentgate reads (and removes) these: free | metered | registered.
            headers={"Consentgate-Access": found.access, "Consentgate-Article-Id": found.slug},
        )
        return _with_ad_cookie(request, response)

    @app.get("/privacy", response_class=HTMLResponse)
    async def privacy() -> HTMLResponse:
        text = (HERE / "privacy-policy.md").read_text(encoding="utf-8")
        return HTMLResponse(_page("Privacy policy", f"<pre>{html.escape(text)}</pre>"))

    # -- consent in the app's own code --------------------------------------------------
    @app.get("/api/recommendations")
    async def recommendations(request: Request) -> dict[str, Any]:
        """Personalised by the reader's favourite topic only with *preferences* consent."""
        personalised = request.state.consent.allows("preferences")
        topic = request.cookies.get(TOPIC_COOKIE) if personalised else None
        chosen = [a for a in ARTICLES if a.topic == topic] or list(ARTICLES[:3])
        return {
            "personalised": personalised,
            "topic": topic,
            "items": [{"slug": a.slug, "title": a.title} for a in chosen],
        }

    @app.get("/prefs/topic")
    async def choose_topic(topic: str, request: Request) -> Response:
        if topic not in TOPICS:
            raise HTTPException(status_code=400, detail=f"topic must be one of {TOPICS}")
        response = JSONResponse({"topic": topic, "remembered": False})
        if request.state.consent.allows("preferences"):
            response = JSONResponse({"topic": topic, "remembered": True})
            response.set_cookie(TOPIC_COOKIE, topic, max_age=ONE_YEAR, samesite="lax")
        return response

    @app.post("/api/pageview")
    async def pageview(request: Request) -> Response:
        """Counts a page view with an analytics id — only when the reader allows it."""
        if not request.state.consent.allows("analytics"):
            return JSONResponse({"counted": False})
        stats_id = request.cookies.get(STATS_COOKIE) or secrets.token_hex(16)
        response = JSONResponse({"counted": True})
        # Had we forgotten the check above, consentgate would drop this cookie anyway.
        response.set_cookie(STATS_COOKIE, stats_id, max_age=ONE_YEAR, samesite="lax")
        return response

    # -- the site's own accounts --------------------------------------------------------
    @app.get("/signup", response_class=HTMLResponse)
    async def signup_form(next: str = "/") -> HTMLResponse:
        return HTMLResponse(
            _form_page("Register", "/signup", _CREDENTIALS + _POLICY_BOX, next_url=next)
        )

    @app.post("/signup", response_class=HTMLResponse)
    async def signup(request: Request) -> Response:
        _check_same_origin(request)
        form = await _form(request)
        email = form.get("email", "").strip().lower()
        password = form.get("password", "")
        next_url = _safe_next(form.get("next"))
        error = ""
        if "@" not in email:
            error = "Please give a valid e-mail address."
        elif len(password) < MIN_PASSWORD_LENGTH:
            error = f"Please choose a password of at least {MIN_PASSWORD_LENGTH} characters."
        elif form.get("accept_policy") != "yes":
            error = "Please read and accept the privacy policy to register."
        if error:
            fields = _CREDENTIALS + _POLICY_BOX
            page = _form_page("Register", "/signup", fields, error=error, next_url=next_url)
            return HTMLResponse(page, status_code=400)
        user_id = await users.create(email, password)
        if user_id is None:
            page = _form_page(
                "Register",
                "/signup",
                _CREDENTIALS + _POLICY_BOX,
                error="That e-mail is already registered: sign in instead.",
                next_url=next_url,
            )
            return HTMLResponse(page, status_code=400)
        try:
            # The proof of consent: version, text hash, time, method "external".
            await request.state.consentgate.record_policy_acceptance(request.scope, user_id)
        except StorageError:
            await users.delete(user_id)  # no recorded acceptance, no account
            return HTMLResponse(
                _page("Please try again", "<p>We could not register you just now.</p>"),
                status_code=503,
            )
        response = RedirectResponse(next_url, status_code=303)
        response.headers.append("set-cookie", sessions.cookie_header(user_id))
        return response

    @app.get("/signin", response_class=HTMLResponse)
    async def signin_form(next: str = "/") -> HTMLResponse:
        return HTMLResponse(_form_page("Sign in", "/signin", _CREDENTIALS, next_url=next))

    @app.post("/signin", response_class=HTMLResponse)
    async def signin(request: Request) -> Response:
        _check_same_origin(request)
        form = await _form(request)
        next_url = _safe_next(form.get("next"))
        user_id = await users.authenticate(
            form.get("email", "").strip().lower(), form.get("password", "")
        )
        if user_id is None:
            page = _form_page(
                "Sign in",
                "/signin",
                _CREDENTIALS,
                error="Wrong e-mail or password.",
                next_url=next_url,
            )
            return HTMLResponse(page, status_code=400)
        response = RedirectResponse(next_url, status_code=303)
        response.headers.append("set-cookie", sessions.cookie_header(user_id))
        return response

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        _check_same_origin(request)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # The order matters: the last added middleware is the outermost. consentgate must
    # see the uncompressed HTML, so compression goes *outside* it, i.e. is added after.
    app.add_middleware(ConsentGate, config=consentgate_config(data_dir), user_resolver=current_user)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    return app
