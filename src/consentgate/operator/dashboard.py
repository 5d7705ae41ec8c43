"""The admin dashboard: the operator's figures and access lookups, in the browser.

GET  {prefix}/admin             overview: the figures of ``consentgate stats``, charts per day
GET  {prefix}/admin/search?q=   a consent id or an e-mail: what ``consentgate show`` shows
GET  {prefix}/admin/login       sign-in form (the admin token)
POST {prefix}/admin/login       checks the token, sets the admin cookie
POST {prefix}/admin/logout      ends the admin session

Off unless ``[admin] token_sha256`` is set (404). Authentication: ``Authorization:
Bearer <token>`` or the ``cg_admin`` cookie set by the login form — a signed cookie
(salt ``consentgate.admin.v1``) naming a stored session (kind "admin", its id only as
SHA-256) of one hour, HttpOnly, SameSite=Strict, Path limited to the dashboard, and
bound to the current token's hash (a new token ends every session). Logout deletes
the session: a copied cookie stops working. Tokens are compared as SHA-256 digests
with ``hmac.compare_digest``, and only after the limiter: a waiting client's guess is
not even compared. Only login POSTs that pass the CSRF and Origin checks count as
failures (per client network, growing delays), so cross-site junk cannot lock the
operator out; failed bearer tokens are counted the same way.
Read-only, server-rendered, no JavaScript; every answer is ``no-store``, unframeable,
without referrer, under a CSP that allows only the page's own stylesheet. Failures take
the one failure path of our routes (web/failures.py): JSON for a client that asks for
it, else a page in the dashboard's style — never the operator's ``failure_response``
hook, which is for the readers' pages. The HTML lives in operator/dashboard_html.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from consentgate.accounts.ratelimit import BackoffPolicy
from consentgate.accounts.sessions import SessionCodec, SessionStore
from consentgate.keys import Purpose
from consentgate.markup import escape as _e
from consentgate.operator.dashboard_html import (
    DEFAULT_DAYS,
    MAX_QUERY,
    consent_html,
    dashboard_page,
    failure_html,
    login_html,
    nav_html,
    outbox_html,
    user_html,
)
from consentgate.operator.privacy import consent_report, user_report
from consentgate.operator.report import CSS_SHA256, stats_section
from consentgate.operator.stats import MAX_WINDOW_DAYS, check_window, compute_stats
from consentgate.operator.store import Window, parse_when
from consentgate.storage import StorageError
from consentgate.visitor import client_network, ip_hmac
from consentgate.web.cookies import ADMIN_COOKIE
from consentgate.web.errors import Failure
from consentgate.web.failures import FailurePage, failure_response, wants_json_answer
from consentgate.web.forms import Form, RequestFailure, check_csrf, first, read_form, retry_seconds

if TYPE_CHECKING:
    from consentgate.accounts.ratelimit import Backoff
    from consentgate.config import Config
    from consentgate.keys import Keys
    from consentgate.storage import Storage
    from consentgate.visitor import Visitor
    from consentgate.web.endpoints import Handler
    from consentgate.web.pages import PageKit

__all__ = [
    "ADMIN_COOKIE",
    "ADMIN_SALT",
    "SECURITY_HEADERS",
    "Dashboard",
    "dashboard_routes",
]

logger = logging.getLogger("consentgate")
# Opens the storage on first use (the middleware's ledger knows when it is open).
Opener = Callable[[], Awaitable[None]]

ADMIN_SALT = Purpose.ADMIN.value
SESSION_SECONDS = 3600
LOGIN_WINDOW = 15 * 60  # the longest wait
# Per client network: 10 wrong tokens are free, then each doubles the wait. No limit
# over all networks: anyone could then lock the operator out, and a token of 256
# random bits is not guessed by trying.
TOKEN_BACKOFF = BackoffPolicy(free=10, max_seconds=LOGIN_WINDOW)
MAX_DAYS = MAX_WINDOW_DAYS
MAX_FORM_BYTES = 8 * 1024

# Never framed, whatever frame_ancestors allows for the readers' pages: nobody needs the
# operator's dashboard inside another page, and a framed login or search is the
# clickjacking set-up.
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "x-frame-options": "DENY",
    "content-security-policy": (
        f"default-src 'none'; style-src {CSS_SHA256}; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "vary": "Cookie, Authorization",
}


def dashboard_routes(
    pages: PageKit, keys: Keys, storage: Storage, opener: Opener, backoff: Backoff
) -> dict[tuple[str, str], Handler]:
    """The dashboard's routes, to add to our router; empty when no admin token is
    configured (then the paths are the app's, usually a 404)."""
    if not pages.config.admin_token_sha256:
        return {}
    return Dashboard(pages, keys, storage, opener, backoff).routes()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Dashboard:
    def __init__(
        self, pages: PageKit, keys: Keys, storage: Storage, opener: Opener, backoff: Backoff
    ) -> None:
        self.pages = pages
        self.config: Config = pages.config
        self.keys = keys
        self.storage = storage
        self.opener = opener
        self.backoff = backoff
        self.base = f"{self.config.prefix}/admin"
        codec = SessionCodec(keys, purpose=Purpose.ADMIN, lifetime_seconds=SESSION_SECONDS)
        self.sessions = SessionStore(storage, codec, kind="admin", opener=opener)

    def routes(self) -> dict[tuple[str, str], Handler]:
        b = self.base
        return {
            ("GET", b): self._guard(self.overview),
            ("GET", f"{b}/search"): self._guard(self.search),
            ("GET", f"{b}/login"): self._guard(self.login_form, public=True),
            ("POST", f"{b}/login"): self._guard(self.login, public=True),
            ("POST", f"{b}/logout"): self._guard(self.logout, public=True),
        }

    # -- authentication -------------------------------------------------------------
    @property
    def _token_sha256(self) -> str | None:
        return self.config.admin_token_sha256

    def token_matches(self, token: str) -> bool:
        expected = self._token_sha256
        if not expected or not token or len(token) > 512:
            return False
        return hmac.compare_digest(_token_digest(token), expected)

    def _session_subject(self) -> str:
        """Binds a session to the token in force: a new token ends old sessions."""
        expected = self._token_sha256 or ""
        return hashlib.sha256(f"admin-session:{expected}".encode()).hexdigest()[:32]

    async def session_cookie_value(self) -> str:
        """A new stored admin session, as the ``cg_admin`` cookie's value."""
        return await self.sessions.start(self._session_subject())

    async def _valid_session(self, value: str | None) -> bool:
        subject = await self.sessions.subject(value)
        return subject is not None and hmac.compare_digest(subject, self._session_subject())

    def _limit_key(self, kind: str, visitor: Visitor) -> str:
        network = client_network(visitor.client_ip, self.config.accounts.ipv6_prefix)
        return f"admin-{kind}:{ip_hmac(self.keys.newest, network) or 'unknown'}"

    async def _auth_failure(self, request: Request, visitor: Visitor) -> Response | None:
        """None when the request is authenticated, else the answer to send."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            # The limiter first: a waiting client's token is not even compared.
            key = self._limit_key("bearer", visitor)
            backoff = self.backoff
            wait = await backoff.wait_seconds(key, TOKEN_BACKOFF)
            if wait > 0:
                return self._fail(request, _too_many(wait))
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(token.strip()):
                return None
            await backoff.failure(key, TOKEN_BACKOFF)
            wrong = RequestFailure(Failure.ADMIN_TOKEN_WRONG, challenge=_challenge(True))
            return self._fail(request, wrong)
        if await self._valid_session(visitor.cookies.get(ADMIN_COOKIE)):
            return None
        accept = request.headers.get("accept", "")
        if "text/html" in accept:
            target = f"{self.base}/login?next={quote(visitor.path_with_query, safe='')}"
            return _headers(RedirectResponse(target, status_code=303))
        missing = RequestFailure(Failure.ADMIN_SIGN_IN_REQUIRED, challenge=_challenge(False))
        return self._fail(request, missing)

    def _guard(
        self,
        handler: Callable[[Request, Visitor], Awaitable[Response]],
        *,
        public: bool = False,
    ) -> Handler:
        async def endpoint(scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
            request = Request(scope, receive)
            response: Response | None
            if not self._token_sha256:
                response = self._fail(request, RequestFailure(Failure.ADMIN_OFF))
            else:
                response = None if public else await self._auth_failure(request, visitor)
            if response is None:
                try:
                    response = await handler(request, visitor)
                except StorageError as exc:
                    logger.error("consentgate: admin dashboard: storage unavailable: %s", exc)
                    message = "The database does not answer; try again shortly."
                    failure = RequestFailure(Failure.STORAGE_UNAVAILABLE, message=message)
                    response = self._fail(request, failure)
            await _headers(response)(scope, receive, send)

        return endpoint

    # -- pages ----------------------------------------------------------------------
    async def overview(self, request: Request, visitor: Visitor) -> Response:
        try:
            window = _window_from(request)
        except ValueError as exc:
            # Refused before any storage call: no window can make us read years of rows.
            failure = RequestFailure(Failure.BAD_WINDOW, message=f"{exc}.")
            return self._fail(request, failure, visitor=visitor)
        await self.opener()
        config = self.config
        stats = await compute_stats(
            self.storage,
            window,
            categories=config.category_ids,
            required=config.required_category_ids,
        )
        days = request.query_params.get("days", "")
        choices = "".join(
            f'<a href="{_e(self.base)}?days={n}"'
            f"{' aria-current=page' if days == str(n) else ''}>last {n} days</a> "
            for n in (7, 30, 90, 365)
        )
        body = (
            f'<p class="note">Show: {choices}</p>'
            + stats_section(stats)
            + outbox_html(stats.outbox)
        )
        return self._html("Overview", body, visitor)

    async def search(self, request: Request, visitor: Visitor) -> Response:
        query = request.query_params.get("q", "").strip()[:MAX_QUERY]
        if not query:
            body = "<p>Enter a consent id or an e-mail address.</p>"
            return self._html("Search", body, visitor, query=query)
        await self.opener()
        storage = self.storage
        if "@" in query:
            found = await user_report(storage, query)
            body = (
                user_html(found)
                if found is not None
                else f"<p>No account with the e-mail address <b>{_e(query)}</b>.</p>"
            )
        else:
            body = consent_html(await consent_report(storage, query))
        return self._html(f"Search: {query}", body, visitor, query=query)

    async def login_form(self, request: Request, visitor: Visitor) -> Response:
        next_url = _admin_next(request.query_params.get("next"), self.base)
        return self._login_page(visitor, next_url, status=200)

    async def login(self, request: Request, visitor: Visitor) -> Response:
        form = await self._read_form(request)
        if isinstance(form, Response):
            return form
        next_url = _admin_next(first(form, "next"), self.base)
        # CSRF and Origin before anything counts: a cross-site page can make the
        # operator's browser post junk, and that must not lock the operator out. (The
        # form comes back with its error and a fresh token: the operator's next try.)
        if not self._csrf_ok(request, visitor, first(form, "csrf_token")):
            return self._login_page(
                visitor,
                next_url,
                status=403,
                error="The form had expired or came from another site; please try again.",
            )
        key = self._limit_key("login", visitor)
        backoff = self.backoff
        wait = await backoff.wait_seconds(key, TOKEN_BACKOFF)
        if wait > 0:
            return self._fail(request, _too_many(wait))
        if not self.token_matches(first(form, "token").strip()):
            await backoff.failure(key, TOKEN_BACKOFF)
            return self._login_page(
                visitor, next_url, status=401, error="That is not the admin token."
            )
        await backoff.success(key)
        value = await self.session_cookie_value()
        response = RedirectResponse(next_url, status_code=303)
        response.headers.append(
            "set-cookie",
            self.pages.cookies.admin.header(value, max_age=SESSION_SECONDS, scheme=visitor.scheme),
        )
        return response

    async def logout(self, request: Request, visitor: Visitor) -> Response:
        form = await self._read_form(request)
        if isinstance(form, Response):
            return form
        if not self._csrf_ok(request, visitor, first(form, "csrf_token")):
            return self._fail(request, RequestFailure(Failure.ADMIN_FORM_REFUSED))
        try:
            await self.sessions.end(visitor.cookies.get(ADMIN_COOKIE))
        except StorageError as exc:
            logger.error("consentgate: could not end the admin session on the server: %s", exc)
        response = RedirectResponse(f"{self.base}/login", status_code=303)
        response.headers.append(
            "set-cookie", self.pages.cookies.admin.expired(scheme=visitor.scheme)
        )
        return response

    # -- pieces ---------------------------------------------------------------------
    def _fail(
        self, request: Request, failure: RequestFailure, *, visitor: Visitor | None = None
    ) -> Response:
        """Every failure of the dashboard: the one failure path of our routes, drawn in
        the dashboard's style (with its navigation when ``visitor`` is signed in).

        Not ``PageKit.fail``, so not the operator's ``failure_response`` hook: that
        renders the site's look for its readers, and the dashboard is an operator tool
        (which must answer alike whatever the site's hook does)."""
        nav, cookie = self._nav(visitor) if visitor is not None else ("", None)
        site, base = self.config.site_name, self.base

        def render(kind: Failure, message: str) -> str:
            return failure_html(site, base, kind, message, nav)

        page = FailurePage(render, SECURITY_HEADERS, json_headers=SECURITY_HEADERS)
        wants_json = wants_json_answer(request)
        response = failure_response(failure, wants_json=wants_json, page=page)
        if cookie and not wants_json:
            response.headers.append("set-cookie", cookie)
        return response

    async def _read_form(self, request: Request) -> Form | Response:
        """The form, or the 400/413/415 that names why it cannot be read."""
        try:
            return await read_form(request, MAX_FORM_BYTES)
        except RequestFailure as failure:
            return self._fail(request, failure)

    def _csrf_ok(self, request: Request, visitor: Visitor, submitted: str) -> bool:
        cookie_token = visitor.cookies.get(self.config.cookie_names.csrf)
        try:
            check_csrf(request, self.pages.csrf, cookie_token, submitted)
        except RequestFailure:
            return False
        return True

    def _login_page(
        self, visitor: Visitor, next_url: str, *, status: int, error: str = ""
    ) -> Response:
        token, cookie = self.pages.csrf_token_for(visitor)
        body = login_html(self.config.site_name, self.base, token, next_url, error)
        response = HTMLResponse(body, status_code=status)
        if cookie:
            response.headers.append("set-cookie", cookie)
        return response

    def _nav(self, visitor: Visitor, query: str = "") -> tuple[str, str | None]:
        """The navigation of a signed-in page, and a Set-Cookie if its CSRF token is new."""
        token, cookie = self.pages.csrf_token_for(visitor)
        return nav_html(self.base, token, query), cookie

    def _html(self, title: str, content: str, visitor: Visitor, *, query: str = "") -> Response:
        nav, cookie = self._nav(visitor, query)
        body = dashboard_page(self.config.site_name, title, content, nav)
        response = HTMLResponse(body)
        if cookie:
            response.headers.append("set-cookie", cookie)
        return response


# -- small helpers ---------------------------------------------------------------------


def _window_from(request: Request) -> Window:
    """``?since=&until=`` (ISO; since defaults to 30 days before until) or ``?days=N``
    (default 30). Raises ValueError with a message for the operator: a bad date, an
    empty window, or more than MAX_DAYS days."""
    params = request.query_params
    now = datetime.now(UTC)
    if params.get("since") or params.get("until"):
        until = parse_when(params["until"]) if params.get("until") else None
        since = (
            parse_when(params["since"])
            if params.get("since")
            else (until or now) - timedelta(days=DEFAULT_DAYS)
        )
        window = Window(since, until)
    else:
        raw = params.get("days") or str(DEFAULT_DAYS)
        days = int(raw) if raw.isdigit() and len(raw) <= 6 else 0
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}, got {raw!r}")
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        window = Window(today - timedelta(days=days - 1), None)
    check_window(window, now, MAX_DAYS)
    return window


def _admin_next(value: str | None, base: str) -> str:
    """Only a dashboard page: no other path of the site, no other host."""
    if not value or len(value) > 2048 or any(ch in value for ch in "\r\n\t\\"):
        return base
    if value == base or value.startswith((f"{base}?", f"{base}/")):
        if value.startswith((f"{base}/login", f"{base}/logout")):
            return base
        return value
    return base


def _challenge(invalid: bool) -> str:
    realm = 'Bearer realm="consentgate admin"'
    return realm + (', error="invalid_token"' if invalid else "")


def _too_many(wait_seconds: float) -> RequestFailure:
    seconds = retry_seconds(wait_seconds)
    message = f"Too many attempts; try again in {seconds} seconds."
    return RequestFailure(Failure.TOO_MANY_ATTEMPTS, message=message, retry_after=seconds)


def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
