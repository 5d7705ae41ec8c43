"""consentgate's own endpoints, under the configured prefix (default ``/consentgate``).

GET  {prefix}/consent            the consent in force, as JSON
POST {prefix}/consent            a decision (form or JSON); CSRF-protected
POST {prefix}/consent/withdraw   withdraw every optional category
GET  {prefix}/consent/receipt    a consent receipt: a page for browsers (Accept: text/html),
                                 JSON (Kantara CR v1.1 field names) for other clients and
                                 as a download with ?format=json
GET  {prefix}/settings           the full settings page (no JavaScript needed)
GET  {prefix}/static/<file>      the banner's stylesheet and script
GET  /.well-known/gpc.json       we honour Global Privacy Control
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from consentgate.consent.classes import consent_class
from consentgate.consent.cookies import expire_cookie_headers
from consentgate.consent.receipt import consent_receipt, receipt_texts, receipt_view
from consentgate.consent.state import Decision, consent_in_force, decide
from consentgate.storage import StorageError
from consentgate.web.cookies import decision_cookie_headers
from consentgate.web.errors import Failure
from consentgate.web.forms import (
    RequestFailure,
    check_csrf,
    first,
    media_type,
    parse_json,
    private_headers,
    read_body,
    read_form,
    see_other,
)
from consentgate.web.pages import STATIC_FILES, FailureResponse, PageKit, wants_json_answer
from consentgate.web.security import safe_next
from consentgate.web.templates import render_receipt_page, render_settings_page

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.consent.banner_hash import BannerHashes
    from consentgate.consent.cookies import CookieRegistry
    from consentgate.consent.ledger import Ledger
    from consentgate.consent.state import ConsentCookieCodec
    from consentgate.visitor import Visitor

logger = logging.getLogger("consentgate")

# Every route of ours, ours and the accounts' and the dashboard's, has this signature.
Handler = Callable[[Scope, Receive, Send, "Visitor"], Awaitable[None]]
__all__ = ["STATIC_FILES", "Endpoints", "FailureResponse", "Handler"]
ACTIONS = ("accept_all", "reject_all", "save")
GPC_LAST_UPDATE = "2026-11-26"


class Endpoints:
    """The consent endpoints, and the router for every route under our prefix."""

    def __init__(
        self,
        pages: PageKit,
        ledger: Ledger,
        registry: CookieRegistry,
        codec: ConsentCookieCodec,
        banner_hashes: BannerHashes,
    ) -> None:
        self.pages = pages
        self.config: Config = pages.config
        self.ledger = ledger
        self.registry = registry
        self.codec = codec
        self.banner_hashes = banner_hashes
        prefix = self.config.prefix
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", f"{prefix}/consent"): self.get_consent,
            ("POST", f"{prefix}/consent"): self.post_consent,
            ("POST", f"{prefix}/consent/withdraw"): self.withdraw,
            ("GET", f"{prefix}/consent/receipt"): self.receipt,
            ("GET", f"{prefix}/settings"): self.settings,
            ("GET", "/.well-known/gpc.json"): self.gpc_json,
        }
        self._static_prefix = f"{prefix}/static/"
        self._static = pages.static_files
        self._index_paths()

    @property
    def route_keys(self) -> frozenset[tuple[str, str]]:
        """Every (method, path) answered here, static files aside (the fuzz test's list)."""
        return frozenset(self._routes)

    @property
    def static_paths(self) -> tuple[str, ...]:
        return tuple(f"{self._static_prefix}{name}" for name in self._static)

    def add_routes(self, routes: Mapping[tuple[str, str], Handler]) -> None:
        """More endpoints under our prefix (the built-in accounts)."""
        self._routes.update(routes)
        self._index_paths()

    def _index_paths(self) -> None:
        self._paths = {path for _, path in self._routes}
        # The first segment of every path answered here ("/consentgate", "/.well-known"):
        # the app's own requests, nearly all of them, are told apart by it alone.
        self.roots = tuple(
            {"/" + path.split("/", 2)[1] for path in (*self._paths, self._static_prefix)}
        )

    #: The first segment of every path answered here ("/consentgate", "/.well-known"),
    #: for a caller to tell the app's own requests apart before calling match.
    roots: tuple[str, ...]

    def match(self, scope: Scope) -> Handler | None:
        path = _route_path(scope)
        if not path.startswith(self.roots):
            return None
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        handler = self._routes.get((method, path))
        if handler is not None:
            return handler
        if path.startswith(self._static_prefix) and method == "GET":
            return self.static
        if path in self._paths:
            return self.method_not_allowed
        return None

    # -- GET endpoints --------------------------------------------------------------
    async def get_consent(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        consent = visitor.consent
        token, cookie = self.pages.csrf_token_for(visitor)
        body = {
            "consent_id": consent.consent_id,
            "decided": consent.decided,
            "granted": _ordered(self.config, consent.granted),
            "denied": _ordered(self.config, consent.denied),
            "mode": consent.mode,
            "gpc": consent.gpc,
            "policy_version": self.config.policy.version,
            "categories": [
                {"id": c.id, "title": c.title, "description": c.description, "required": c.required}
                for c in self.config.categories
            ],
            "csrf_token": token,
        }
        response = JSONResponse(body, headers=private_headers())
        if cookie:
            response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)

    async def receipt(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        decision = visitor.decision
        if decision is None:
            await self.pages.fail(scope, receive, send, visitor, RequestFailure(Failure.NO_CONSENT))
            return
        try:
            history = await self.ledger.history(decision.consent_id)
        except StorageError:
            await self.pages.fail(
                scope, receive, send, visitor, RequestFailure(Failure.STORAGE_UNAVAILABLE)
            )
            return
        if not history:
            await self.pages.fail(scope, receive, send, visitor, RequestFailure(Failure.NO_CONSENT))
            return
        request = Request(scope)
        download = request.query_params.get("format") == "json"
        if download or not _wants_page(request):
            body = consent_receipt(self.config, history, visitor.consent)
            headers = private_headers()
            # The download link saves a file; a client that asked for JSON reads it inline.
            disposition = "attachment" if download else "inline"
            headers["content-disposition"] = (
                f'{disposition}; filename="consent-receipt-{decision.consent_id}.json"'
            )
            await JSONResponse(body, headers=headers)(scope, receive, send)
            return
        ctx = self.pages.context(visitor, "", "/")
        view = receipt_view(self.config, history, visitor.language)
        page = render_receipt_page(
            ctx,
            view,
            receipt_texts(visitor.language),
            json_url=f"{self.config.prefix}/consent/receipt?format=json",
        )
        await self.pages.reader_page(scope, receive, send, visitor, page)

    async def settings(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        request = Request(scope, receive)
        next_url = safe_next(request.query_params.get("next"))
        token, cookie = self.pages.csrf_token_for(visitor)
        ctx = self.pages.context(visitor, token, next_url)
        decision = visitor.decision
        decided_at = (
            datetime.fromtimestamp(decision.decided_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if decision is not None and decision.decided_at is not None
            else None
        )
        page = render_settings_page(
            ctx,
            consent_id=decision.consent_id if decision else None,
            decided_at=decided_at,
        )
        await self.pages.reader_page(scope, receive, send, visitor, page, cookie=cookie)

    async def gpc_json(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        body = {"gpc": self.config.gpc_enabled, "lastUpdate": GPC_LAST_UPDATE}
        await JSONResponse(body, headers={"cache-control": "public, max-age=86400"})(
            scope, receive, send
        )

    async def static(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        name = _route_path(scope)[len(self._static_prefix) :]
        content = self._static.get(name)
        if content is None:
            await self.pages.fail(scope, receive, send, visitor, RequestFailure(Failure.NOT_FOUND))
            return
        headers = {"cache-control": "public, max-age=31536000, immutable"}
        await Response(content, media_type=STATIC_FILES[name], headers=headers)(
            scope, receive, send
        )

    async def method_not_allowed(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        allowed = sorted({m for m, p in self._routes if p == _route_path(scope)})
        failure = RequestFailure(
            Failure.METHOD_NOT_ALLOWED,
            message=f"Method not allowed; use {', '.join(allowed)}.",
            allow=allowed,
        )
        await self.pages.fail(scope, receive, send, visitor, failure)

    # -- POST endpoints -------------------------------------------------------------
    async def post_consent(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self._decision_endpoint(scope, receive, send, visitor, withdraw=False)

    async def withdraw(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        await self._decision_endpoint(scope, receive, send, visitor, withdraw=True)

    async def _decision_endpoint(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, *, withdraw: bool
    ) -> None:
        request = Request(scope, receive)
        try:
            submission = await read_submission(request)
            self._check_csrf(request, visitor, submission)
            granted = self._granted_by(submission, withdraw=withdraw)
            action = _ledger_action(self.config, visitor.decision, granted, withdraw=withdraw)
            decision = decide(self.config, visitor.decision, granted, gpc_signal=visitor.gpc)
            try:
                await self.ledger.record(
                    decision,
                    visitor,
                    scope,
                    action=action,
                    method=submission.method,
                    granted=decision.granted,
                    banner_hash=self.banner_hashes.of(visitor),
                )
            except StorageError as exc:
                logger.error("consentgate: consent not recorded, so not granted: %s", exc)
                raise RequestFailure(Failure.STORAGE_UNAVAILABLE) from exc
        except RequestFailure as failure:
            await self.pages.fail(
                scope, receive, send, visitor, failure, wants_json=wants_json_answer(request)
            )
            return
        await self._decided(scope, receive, send, visitor, decision, submission)

    async def _decided(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        decision: Decision,
        submission: Submission,
    ) -> None:
        config = self.config
        consent = consent_in_force(config, decision, mode=visitor.mode, gpc_signal=visitor.gpc)
        response: Response
        if submission.is_json:
            response = JSONResponse(
                {
                    "consent_id": decision.consent_id,
                    "granted": _ordered(self.config, consent.granted),
                    "denied": _ordered(self.config, consent.denied),
                    "settings_url": f"{config.prefix}/settings?next={quote(submission.next_url)}",
                    "receipt_url": f"{config.prefix}/consent/receipt",
                },
                headers=private_headers(),
            )
        else:
            # 303: the browser follows with a GET, so a reload never re-posts the form.
            response = see_other(submission.next_url)
        for header in decision_cookie_headers(
            self.pages.cookies,
            self.codec,
            decision,
            consent_class(consent, config.optional_category_ids),
            visitor.scheme,
        ):
            response.headers.append("set-cookie", header)
        for header in expire_cookie_headers(visitor.cookies, self.registry, consent.denied):
            response.headers.append("set-cookie", header)
        await response(scope, receive, send)

    def _check_csrf(self, request: Request, visitor: Visitor, submission: Submission) -> None:
        cookie_token = visitor.cookies.get(self.config.cookie_names.csrf)
        # The banner's forms may sit on a page shared by every reader of a consent class
        # (no token in it): the browser's Origin / Fetch Metadata vouch for those posts.
        check_csrf(
            request, self.pages.csrf, cookie_token, submission.csrf_token, browser_vouches=True
        )

    def _granted_by(self, submission: Submission, *, withdraw: bool) -> frozenset[str]:
        config = self.config
        optional = [c.id for c in config.categories if not c.required]
        if withdraw:
            return frozenset()
        if submission.action == "accept_all":
            return frozenset(optional)
        if submission.action == "reject_all":
            return frozenset()
        if submission.action != "save":
            raise RequestFailure(Failure.BAD_ACTION, f"Got {submission.action!r}.")
        for category in submission.categories:
            if category not in config.category_ids:
                raise RequestFailure(Failure.UNKNOWN_CATEGORY, f"Got {category!r}.")
        return frozenset(c for c in submission.categories if c in optional)


class Submission:
    """What a consent POST said, whichever way it was sent."""

    def __init__(
        self,
        *,
        action: str,
        categories: list[str],
        csrf_token: str | None,
        next_url: str,
        method: str,
        is_json: bool,
    ) -> None:
        self.action = action
        self.categories = categories
        self.csrf_token = csrf_token
        self.next_url = next_url
        self.method = method
        self.is_json = is_json


async def read_submission(request: Request) -> Submission:
    content_type = media_type(request)
    if content_type == "application/json":
        return _json_submission(request, await read_body(request))
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise RequestFailure(Failure.UNSUPPORTED_MEDIA_TYPE, f"Got {content_type!r}.")
    form = await read_form(request)
    return Submission(
        action=first(form, "action"),
        categories=form.get("category", []),
        csrf_token=first(form, "csrf_token") or request.headers.get("x-csrf-token"),
        next_url=safe_next(first(form, "next")),
        method="form",
        is_json=False,
    )


def _json_submission(request: Request, body: bytes) -> Submission:
    # Bounded in size (read_body) and depth (parse_json): malformed, deep or huge-number
    # JSON is a 400 that names the problem, never an exception out of json.loads.
    data = parse_json(body) if body else {}
    if not isinstance(data, Mapping):
        raise RequestFailure(Failure.BAD_JSON, "Expected an object.")
    categories: Any = data.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise RequestFailure(Failure.BAD_JSON, "'categories' must be a list of strings.")
    action = data.get("action", "")
    if not isinstance(action, str):
        raise RequestFailure(Failure.BAD_JSON, "'action' must be a string.")
    next_url = data.get("next")
    # The banner's script says so; any other JSON client is an API caller.
    from_banner = request.headers.get("x-consentgate-client") == "banner"
    return Submission(
        action=action,
        categories=categories,
        csrf_token=request.headers.get("x-csrf-token"),
        next_url=safe_next(next_url if isinstance(next_url, str) else None),
        method="js" if from_banner else "api",
        is_json=True,
    )


def _ledger_action(
    config: Config, previous: Decision | None, granted: frozenset[str], *, withdraw: bool
) -> str:
    if withdraw:
        return "withdraw"
    if previous is not None and previous.explicit:
        return "update"
    return "grant" if granted & config.optional_category_ids else "reject"


def _ordered(config: Config, ids: frozenset[str]) -> list[str]:
    return [c for c in config.category_ids if c in ids]


def _wants_page(request: Request) -> bool:
    """A browser (it asks for HTML first); API clients and ``*/*`` keep the JSON."""
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("application/json")
    return json_at < 0 or accept.find("text/html") < json_at


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path
