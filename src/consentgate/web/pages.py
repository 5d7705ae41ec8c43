"""What every page and endpoint of ours shares, built once at start-up: :class:`PageKit`.

The headers of our pages, the static files and their version, the reader's CSRF token,
the banner's context, the readers' side of the one failure path (``fail``: the
operator's hook, else :func:`consentgate.web.failures.failure_response`) and the one way
a full page of ours reaches a reader (``reader_page``: set into the site's own page shell
when ``[pages] layout_path`` names one, web/shell.py). The consent
endpoints, the account pages, the dashboard and the banner inserted into the site's
pages each receive this one object (not the middleware), so no two of them can
disagree on, say, a CSRF cookie's flags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from consentgate.consent.texts import resolve_texts
from consentgate.web.cookies import CSRF_COOKIE_MAX_AGE, OwnCookies
from consentgate.web.errors import Failure
from consentgate.web.failures import (
    BoundHook,
    FailurePage,
    FailureResponse,
    failure_response,
    wants_json_answer,
)
from consentgate.web.forms import RequestFailure, page_headers
from consentgate.web.security import CsrfTokens, page_security_headers
from consentgate.web.shell import Layout, PageShell, split_document
from consentgate.web.templates import BannerContext, render_message_page

if TYPE_CHECKING:
    from consentgate.config import Config, RegionMode
    from consentgate.visitor import Visitor

__all__ = [
    "STATIC_FILES",
    "CookieReader",
    "FailurePage",
    "FailureResponse",
    "PageKit",
    "wants_json_answer",
]
STATIC_FILES = {
    "banner.css": "text/css; charset=utf-8",
    "banner.js": "text/javascript; charset=utf-8",
    "wall.css": "text/css; charset=utf-8",
}


class CookieReader(Protocol):
    """What minting a CSRF token reads of a visitor (the account pages' visitor too)."""

    @property
    def cookies(self) -> Mapping[str, str]: ...
    @property
    def scheme(self) -> str: ...


class PageKit:
    def __init__(
        self,
        config: Config,
        csrf: CsrfTokens,
        cookies: OwnCookies,
        failure_response: FailureResponse | None = None,
        *,
        app: ASGIApp | None = None,
    ) -> None:
        self.config = config
        self.csrf = csrf
        self.cookies = cookies
        #: The site's page shell our reader pages are set into (``app``: the site's own
        #: ASGI app, which serves it; without one, or without layout_path, our own look).
        self.shell = PageShell(config.pages, app)
        #: Every page we render: private, strict CSP, framed only by frame_ancestors.
        headers = page_headers(config.frame_ancestors)
        if config.pages.layout_path:
            headers = _with_layout_sources(headers)
        self.page_headers: Mapping[str, str] = MappingProxyType(headers)
        #: The security part alone (the wall page, which sets its own caching).
        self.page_security_headers: Mapping[str, str] = MappingProxyType(
            page_security_headers(config.frame_ancestors)
        )
        self.static_files: Mapping[str, bytes] = MappingProxyType(
            {name: _read_static(name) for name in STATIC_FILES}
        )
        # Changes whenever the files do, so browsers may cache them for a year.
        self.static_version = hashlib.sha256(b"".join(self.static_files.values())).hexdigest()[:10]
        # The operator's hook, for the readers' routes only (see fail()).
        self.operator_failure_response = failure_response
        self.failure_response: FailureResponse = failure_response or self.default_failure_response

    def static_url(self, name: str) -> str:
        return f"{self.config.prefix}/static/{name}?v={self.static_version}"

    def csrf_token_for(self, visitor: CookieReader) -> tuple[str, str | None]:
        """The reader's CSRF token, and a Set-Cookie when a new one had to be made."""
        existing = visitor.cookies.get(self.cookies.csrf.name)
        if existing is not None and self.csrf.is_valid(existing):
            return self.csrf.token_for(existing), None
        browser_id = self.csrf.new_browser_id()
        cookie = self.cookies.csrf.header(
            browser_id, max_age=CSRF_COOKIE_MAX_AGE, scheme=visitor.scheme
        )
        return self.csrf.token_for(browser_id), cookie

    def context(
        self, visitor: Visitor, csrf_token: str, next_url: str, nonce: str | None = None
    ) -> BannerContext:
        consent = visitor.consent
        return self.context_of(
            visitor.language,
            consent.granted if consent.decided else frozenset(),
            consent.decided,
            visitor.gpc,
            visitor.mode,
            csrf_token,
            next_url,
            nonce,
            signed_in=self.signed_in(visitor),
        )

    def signed_in(self, visitor: Visitor) -> bool:
        """A reader signed in to our accounts (whose account page exists): not one the
        site's own ``user_resolver`` names, whom our account page would not know."""
        config = self.config
        return (
            visitor.user_id is not None
            and config.accounts.enabled
            and config.cookie_names.session in visitor.cookies
        )

    def context_of(
        self,
        language: str,
        granted: frozenset[str],
        decided: bool,
        gpc: bool,
        mode: RegionMode,
        csrf_token: str,
        next_url: str,
        nonce: str | None = None,
        *,
        signed_in: bool = False,
    ) -> BannerContext:
        """The banner's context from the few things about the reader it depends on."""
        config = self.config
        return BannerContext(
            prefix=config.prefix,
            lang=language,
            texts=resolve_texts(language, config.texts),
            categories=config.categories,
            granted=granted,
            decided=decided,
            csrf_token=csrf_token,
            next_url=next_url,
            policy_url=config.policy.url,
            policy_version=config.policy.version,
            site_name=config.site_name,
            gpc=gpc,
            mode=mode,
            static_version=self.static_version,
            nonce=nonce,
            signed_in=signed_in,
        )

    async def reader_page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        document: str,
        *,
        status: int = 200,
        cookie: str | None = None,
    ) -> None:
        """Send a full page of ours (register, sign in, account, settings, policy, receipt,
        messages) to a reader: every such page goes through here, so each is set into the
        site's layout when one is configured and works (our own page otherwise), with our
        private, strict headers. ``cookie``: a Set-Cookie to send with it (a new CSRF
        cookie)."""
        html = await self.dressed(visitor.language, document, scope)
        response = HTMLResponse(html, status_code=status, headers=self.page_headers)
        if cookie:
            response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)

    async def dressed(self, language: str, document: str, scope: Scope | None = None) -> str:
        """``document`` (a complete page of ours) in the site's layout for ``language``."""
        return self.in_layout(await self.shell.layout(language, scope), language, document)

    def in_layout(self, layout: Layout | None, language: str, document: str) -> str:
        if layout is None:
            return document
        parts = split_document(document)
        if parts is None:
            return document
        return layout.wrap(language, parts.title, parts.head, parts.content)

    def dressed_page(self, page: FailurePage, layout: Layout | None, language: str) -> FailurePage:
        """A failure page drawn in ``layout`` (fetched beforehand: failures render at once)."""
        if layout is None:
            return page
        render = page.render

        def in_layout(failure: Failure, message: str) -> str:
            return self.in_layout(layout, language, render(failure, message))

        return FailurePage(in_layout, page.headers, page.json_headers)

    async def fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        failure: RequestFailure,
        *,
        wants_json: bool | None = None,
        page: FailurePage | None = None,
    ) -> None:
        """A failure of a reader-facing route (the consent endpoints, the account pages):
        the operator's response if a hook is configured, else ours, drawn by ``page``
        (the consent endpoints' message page by default).

        The operator's hook renders the site's look for its readers, so it answers
        here; the dashboard is an operator tool and calls
        :func:`~consentgate.web.failures.failure_response` without it.
        """
        if wants_json is None:
            wants_json = wants_json_answer(Request(scope))
        hook = self.operator_failure_response
        bound = None if hook is None else _bind(hook, visitor)
        page = page or self.message_page(visitor)
        if not wants_json and hook is None:
            layout = await self.shell.layout(visitor.language, scope)
            page = self.dressed_page(page, layout, visitor.language)
        response = failure_response(failure, wants_json=wants_json, page=page, hook=bound)
        await response(scope, receive, send)

    def message_page(self, visitor: Visitor) -> FailurePage:
        """The consent endpoints' failures for a browser: the small message page."""
        prefix = self.config.prefix

        def render(failure: Failure, message: str) -> str:
            settings = f"{prefix}/settings"
            return render_message_page(
                visitor.language, "Cookie settings", message, settings, prefix=prefix
            )

        return FailurePage(render, self.page_headers)

    def default_failure_response(
        self, failure: Failure, message: str, visitor: Visitor, wants_json: bool
    ) -> Response:
        """What answers a failure when no operator hook is configured (a hook may call it)."""
        refused = RequestFailure(failure, message=message)
        return failure_response(refused, wants_json=wants_json, page=self.message_page(visitor))


def _with_layout_sources(headers: dict[str, str]) -> dict[str, str]:
    """Our pages' CSP, widened for a layout only as far as its own files need: the
    site's fonts ('self'; its stylesheets and images already are)."""
    csp = headers["content-security-policy"]
    headers["content-security-policy"] = csp.replace(
        "default-src 'none';", "default-src 'none'; font-src 'self';", 1
    )
    return headers


def _bind(hook: FailureResponse, visitor: Visitor) -> BoundHook:
    def bound(failure: Failure, message: str, wants_json: bool) -> Response:
        return hook(failure, message, visitor, wants_json)

    return bound


def _read_static(name: str) -> bytes:
    return resources.files("consentgate.web").joinpath("static", name).read_bytes()
