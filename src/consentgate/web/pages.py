"""What every page and endpoint of ours shares, built once at start-up: :class:`PageKit`.

The headers of our pages, the static files and their version, the reader's CSRF token,
the banner's context and the readers' side of the one failure path (``fail``: the
operator's hook, else :func:`consentgate.web.failures.failure_response`). The consent
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
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
    ) -> None:
        self.config = config
        self.csrf = csrf
        self.cookies = cookies
        #: Every page we render: private, strict CSP, framed only by frame_ancestors.
        self.page_headers: Mapping[str, str] = MappingProxyType(
            page_headers(config.frame_ancestors)
        )
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
        )

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
        response = failure_response(
            failure, wants_json=wants_json, page=page or self.message_page(visitor), hook=bound
        )
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


def _bind(hook: FailureResponse, visitor: Visitor) -> BoundHook:
    def bound(failure: Failure, message: str, wants_json: bool) -> Response:
        return hook(failure, message, visitor, wants_json)

    return bound


def _read_static(name: str) -> bytes:
    return resources.files("consentgate.web").joinpath("static", name).read_bytes()
