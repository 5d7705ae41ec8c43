"""consentgate's own endpoints, under the configured prefix (default ``/consentgate``).

GET  {prefix}/consent            the consent in force, as JSON
POST {prefix}/consent            a decision (form or JSON); CSRF-protected
POST {prefix}/consent/withdraw   withdraw every optional category
GET  {prefix}/consent/receipt    a consent receipt (Kantara CR v1.1 field names)
GET  {prefix}/settings           the full settings page (no JavaScript needed)
GET  {prefix}/static/<file>      the banner's stylesheet and script
GET  /.well-known/gpc.json       we honour Global Privacy Control
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from consentgate.consent.cookies import expire_cookie_headers
from consentgate.consent.receipt import consent_receipt
from consentgate.consent.state import Decision, consent_in_force, decide
from consentgate.consent.texts import resolve_texts
from consentgate.storage import StorageError
from consentgate.web.cookies import consent_cookie_header, csrf_cookie_header
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
from consentgate.web.security import safe_next
from consentgate.web.templates import (
    BannerContext,
    render_message_page,
    render_settings_page,
)

if TYPE_CHECKING:
    from consentgate.middleware import ConsentGate
    from consentgate.visitor import Visitor

logger = logging.getLogger("consentgate")

Handler = Callable[[Scope, Receive, Send, "Visitor"], Awaitable[None]]
# (failure, message, visitor, wants_json) -> the response to send instead.
FailureResponse = Callable[[Failure, str, "Visitor", bool], Response]
STATIC_FILES = {
    "banner.css": "text/css; charset=utf-8",
    "banner.js": "text/javascript; charset=utf-8",
    "wall.css": "text/css; charset=utf-8",
}
ACTIONS = ("accept_all", "reject_all", "save")
GPC_LAST_UPDATE = "2026-11-26"


class Endpoints:
    def __init__(self, gate: ConsentGate) -> None:
        self.gate = gate
        prefix = gate.config.prefix
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", f"{prefix}/consent"): self.get_consent,
            ("POST", f"{prefix}/consent"): self.post_consent,
            ("POST", f"{prefix}/consent/withdraw"): self.withdraw,
            ("GET", f"{prefix}/consent/receipt"): self.receipt,
            ("GET", f"{prefix}/settings"): self.settings,
            ("GET", "/.well-known/gpc.json"): self.gpc_json,
        }
        self._paths = {path for _, path in self._routes}
        self._static_prefix = f"{prefix}/static/"
        self._static = {name: _read_static(name) for name in STATIC_FILES}
        # Changes whenever the files do, so browsers may cache them for a year.
        self.static_version = hashlib.sha256(b"".join(self._static.values())).hexdigest()[:10]

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
        self._paths = {path for _, path in self._routes}

    def match(self, scope: Scope) -> Handler | None:
        path = _route_path(scope)
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
        token, cookie = self.csrf_token_for(visitor)
        body = {
            "consent_id": consent.consent_id,
            "decided": consent.decided,
            "granted": _ordered(self.gate, consent.granted),
            "denied": _ordered(self.gate, consent.denied),
            "mode": consent.mode,
            "gpc": consent.gpc,
            "policy_version": self.gate.config.policy.version,
            "categories": [
                {"id": c.id, "title": c.title, "description": c.description, "required": c.required}
                for c in self.gate.config.categories
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
            await self._fail(scope, receive, send, visitor, RequestFailure(Failure.NO_CONSENT))
            return
        try:
            history = await self.gate.ledger.history(decision.consent_id)
        except StorageError:
            await self._fail(
                scope, receive, send, visitor, RequestFailure(Failure.STORAGE_UNAVAILABLE)
            )
            return
        if not history:
            await self._fail(scope, receive, send, visitor, RequestFailure(Failure.NO_CONSENT))
            return
        body = consent_receipt(self.gate.config, history, visitor.consent)
        headers = private_headers()
        headers["content-disposition"] = (
            f'inline; filename="consent-receipt-{decision.consent_id}.json"'
        )
        await JSONResponse(body, headers=headers)(scope, receive, send)

    async def settings(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        request = Request(scope, receive)
        next_url = safe_next(request.query_params.get("next"))
        token, cookie = self.csrf_token_for(visitor)
        ctx = self.context(visitor, token, next_url)
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
        response = HTMLResponse(page, headers=self.gate.page_headers)
        if cookie:
            response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)

    async def gpc_json(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        body = {"gpc": self.gate.config.gpc_enabled, "lastUpdate": GPC_LAST_UPDATE}
        await JSONResponse(body, headers={"cache-control": "public, max-age=86400"})(
            scope, receive, send
        )

    async def static(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        name = _route_path(scope)[len(self._static_prefix) :]
        content = self._static.get(name)
        if content is None:
            await Response("Not found", status_code=404, media_type="text/plain")(
                scope, receive, send
            )
            return
        headers = {"cache-control": "public, max-age=31536000, immutable"}
        await Response(content, media_type=STATIC_FILES[name], headers=headers)(
            scope, receive, send
        )

    async def method_not_allowed(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        allowed = sorted({m for m, p in self._routes if p == _route_path(scope)})
        response = Response(
            f"Method not allowed; use {', '.join(allowed)}",
            status_code=405,
            media_type="text/plain",
            headers={"allow": ", ".join(allowed)},
        )
        await response(scope, receive, send)

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
            action = _ledger_action(self.gate, visitor.decision, granted, withdraw=withdraw)
            decision = decide(self.gate.config, visitor.decision, granted, gpc_signal=visitor.gpc)
            try:
                await self.gate.ledger.record(
                    decision,
                    visitor,
                    scope,
                    action=action,
                    method=submission.method,
                    granted=decision.granted,
                    banner_hash=self.gate.banner_hash(visitor),
                )
            except StorageError as exc:
                logger.error("consentgate: consent not recorded, so not granted: %s", exc)
                raise RequestFailure(Failure.STORAGE_UNAVAILABLE) from exc
        except RequestFailure as failure:
            await self._fail(
                scope, receive, send, visitor, failure, wants_json=_wants_json(request)
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
        config = self.gate.config
        consent = consent_in_force(config, decision, mode=visitor.mode, gpc_signal=visitor.gpc)
        response: Response
        if submission.is_json:
            response = JSONResponse(
                {
                    "consent_id": decision.consent_id,
                    "granted": _ordered(self.gate, consent.granted),
                    "denied": _ordered(self.gate, consent.denied),
                    "settings_url": f"{config.prefix}/settings?next={quote(submission.next_url)}",
                    "receipt_url": f"{config.prefix}/consent/receipt",
                },
                headers=private_headers(),
            )
        else:
            # 303: the browser follows with a GET, so a reload never re-posts the form.
            response = see_other(submission.next_url)
        response.headers.append(
            "set-cookie", consent_cookie_header(self.gate, decision, visitor.scheme)
        )
        for header in expire_cookie_headers(visitor.cookies, self.gate.registry, consent.denied):
            response.headers.append("set-cookie", header)
        await response(scope, receive, send)

    def _check_csrf(self, request: Request, visitor: Visitor, submission: Submission) -> None:
        cookie_token = visitor.cookies.get(self.gate.config.cookie_names.csrf)
        check_csrf(request, self.gate.csrf, cookie_token, submission.csrf_token)

    def _granted_by(self, submission: Submission, *, withdraw: bool) -> frozenset[str]:
        config = self.gate.config
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

    # -- shared pieces --------------------------------------------------------------
    def csrf_token_for(self, visitor: Visitor) -> tuple[str, str | None]:
        """The reader's CSRF token, and a Set-Cookie when a new one had to be made."""
        tokens = self.gate.csrf
        existing = visitor.cookies.get(self.gate.config.cookie_names.csrf)
        if existing is not None and tokens.is_valid(existing):
            return tokens.token_for(existing), None
        browser_id = tokens.new_browser_id()
        return tokens.token_for(browser_id), csrf_cookie_header(
            self.gate, browser_id, visitor.scheme
        )

    def context(
        self, visitor: Visitor, csrf_token: str, next_url: str, nonce: str | None = None
    ) -> BannerContext:
        config = self.gate.config
        return BannerContext(
            prefix=config.prefix,
            lang=visitor.language,
            texts=resolve_texts(visitor.language, config.texts),
            categories=config.categories,
            granted=visitor.consent.granted if visitor.consent.decided else frozenset(),
            decided=visitor.consent.decided,
            csrf_token=csrf_token,
            next_url=next_url,
            policy_url=config.policy.url,
            policy_version=config.policy.version,
            site_name=config.site_name,
            gpc=visitor.gpc,
            mode=visitor.mode,
            static_version=self.gate.static_version,
            nonce=nonce,
        )

    async def _fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        failure: RequestFailure,
        *,
        wants_json: bool | None = None,
    ) -> None:
        if wants_json is None:
            wants_json = _wants_json(Request(scope))
        response = self.gate.failure_response(failure.failure, str(failure), visitor, wants_json)
        await response(scope, receive, send)

    def default_failure_response(
        self, failure: Failure, message: str, visitor: Visitor, wants_json: bool
    ) -> Response:
        if wants_json:
            return JSONResponse(
                {"error": failure.code, "message": message},
                status_code=failure.status,
                headers=private_headers(),
            )
        page = render_message_page(
            visitor.language,
            "Cookie settings",
            message,
            f"{self.gate.config.prefix}/settings",
            prefix=self.gate.config.prefix,
        )
        return HTMLResponse(page, status_code=failure.status, headers=self.gate.page_headers)


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
    gate: ConsentGate, previous: Decision | None, granted: frozenset[str], *, withdraw: bool
) -> str:
    if withdraw:
        return "withdraw"
    if previous is not None and previous.explicit:
        return "update"
    optional = frozenset(gate.config.category_ids) - gate.config.required_category_ids
    return "grant" if granted & optional else "reject"


def _ordered(gate: ConsentGate, ids: frozenset[str]) -> list[str]:
    return [c for c in gate.config.category_ids if c in ids]


def _wants_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return "application/json" in content_type or (
        "application/json" in accept and "text/html" not in accept
    )


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _read_static(name: str) -> bytes:
    return resources.files("consentgate.web").joinpath("static", name).read_bytes()
