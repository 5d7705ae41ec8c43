"""One planner per middleware: (visitor, the app's response head) -> a :class:`ResponsePlan`.

The plan is made of a consent part (``pipeline.ConsentPlanner``: the banner, scripts to
activate, cookies to keep, set and expire) and a wall part (``articles.ArticleGate``:
who reads in full, the cut, the meter cookie, the wall page). The responder carries the
plan out and knows neither part.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders

from consentgate.articles import SIGNAL_HEADERS, ArticleGate, ArticleVerdict
from consentgate.consent.classes import UNDECIDED, consent_class
from consentgate.metrics import WALL_IMPRESSIONS
from consentgate.pipeline import CONSENT_MAX_TOKEN_BYTES, ConsentPlanner
from consentgate.plan import (
    Cache,
    Fallback,
    Mode,
    ResponseHead,
    ResponsePlan,
    reason_of,
)
from consentgate.rewrite import Operation, is_rewritable, is_rewritable_content_type
from consentgate.wall.access import AccessLevel

if TYPE_CHECKING:
    from starlette.types import Scope

    from consentgate.metrics import Metrics
    from consentgate.visitor import Visitor

logger = logging.getLogger("consentgate")

_NO_BODY_STATUSES = frozenset({204, 304})
# Statuses whose body is the article itself; a 404 or 500 page is not an article.
_ARTICLE_STATUSES = frozenset({200, 203, 206})
# Response headers that make a plan do something whatever else the response is.
_ACTIONABLE_HEADERS = frozenset(name.encode("latin-1") for name in ("set-cookie", *SIGNAL_HEADERS))
# Header values of ordinary length are judged once each (the caches stay small).
_CACHED_HEADER_CHARS = 256
_SIGNAL_NAMES = frozenset(name.encode("latin-1") for name in SIGNAL_HEADERS)
# A module constant: a class attribute is looked up on every request.
_FREE = AccessLevel.FREE
# Response header names (as Starlette and most apps spell them) that never make a plan
# do anything: the pass-through check skips them without lower-casing them.
_PLAIN_HEADERS = frozenset(
    (
        b"content-length",
        b"date",
        b"server",
        b"etag",
        b"last-modified",
        b"cache-control",
        b"vary",
        b"expires",
        b"access-control-allow-origin",
        b"x-content-type-options",
        b"strict-transport-security",
        b"accept-ranges",
    )
)


class ResponsePlanner:
    def __init__(
        self,
        consent: ConsentPlanner,
        wall: ArticleGate,
        metrics: Metrics,
        fallback_headers: dict[str, str] | None = None,
        classes: ClassSharing | None = None,
    ) -> None:
        self.consent = consent
        self.wall = wall
        self._metrics = metrics
        self._fallback_headers = dict(fallback_headers or {})
        self._classes = classes

    def for_request(
        self, scope: Scope, visitor: Visitor, set_cookies: Sequence[str]
    ) -> RequestPlanner:
        """Before the app runs: ask it for the whole, plain page of an article, and bind
        the planner to this request. ``set_cookies`` are ours, decided before the app
        ran (a GPC signal's new consent cookie)."""
        wall = self.wall
        # A free path seen before needs nothing prepared (most requests of a site).
        level = _FREE if wall.all_free else wall.route_levels.get(scope["path"])
        if level is not _FREE:
            level = wall.prepare_request(scope)
        return RequestPlanner(self, scope, visitor, set_cookies, level)

    async def plan(
        self,
        scope: Scope,
        visitor: Visitor,
        set_cookies: Sequence[str],
        headers: MutableHeaders,
        status: int,
        first_kind: str,
        route_level: AccessLevel | None = None,
    ) -> ResponsePlan:
        """The plan for a response with these (lower-cased) headers and status.

        ``first_kind``: the type of the app's first message after the start (a body, or,
        say, a zero-copy send we could not rewrite). ``set_cookies`` are ours, decided
        before the app ran (a GPC signal's new consent cookie). ``route_level``: what the
        route rules said of this path before the app ran (None: decide it again).
        """
        head = ResponseHead(headers.raw)
        plan = ResponsePlan(
            set_cookies=list(set_cookies),
            expire_cookies=self.consent.expiries(visitor),
            filter_cookies=self.consent.cookie_filter(visitor),
            drop_headers=SIGNAL_HEADERS,
            max_token_bytes=CONSENT_MAX_TOKEN_BYTES,
            content_type=head.get(b"content-type"),
            content_encoding=head.content_encoding,
        )
        verdict = None
        # A free route whose response says nothing of an article is free: the rules have
        # spoken and no header of the app's overrides them.
        if route_level is not AccessLevel.FREE or head.has_any(_SIGNAL_NAMES):
            access = self.wall.access_of(scope, head, route_level)
            if access.level is not AccessLevel.FREE and status in _ARTICLE_STATUSES:
                verdict = await self.wall.decide(visitor, access)
        if verdict is not None:
            if verdict.meter_cookie:
                plan.set_cookies.append(verdict.meter_cookie)
            plan.cache = Cache.NO_STORE if verdict.gated else Cache.ARTICLE
            if verdict.gated:
                self._metrics.add(WALL_IMPRESSIONS)
                self._plan_cut(plan, visitor, verdict, head, status, first_kind)
                return plan
        if first_kind == "http.response.body" and _rewritable(plan, status):
            try:
                plan.operations = self._operations(visitor, head, verdict, plan)
            except Exception as exc:  # a page we cannot rewrite passes as it is
                logger.warning(
                    "consentgate: HTML of %s not rewritten (%s); passed through as it was",
                    scope.get("path"),
                    reason_of(exc),
                )
            else:
                plan.mode = Mode.BEST_EFFORT
                if verdict is None and self._classes is not None:
                    self._classes.mark(plan, visitor, head, status)
        return plan

    def _plan_cut(
        self,
        plan: ResponsePlan,
        visitor: Visitor,
        verdict: ArticleVerdict,
        head: ResponseHead,
        status: int,
        first_kind: str,
    ) -> None:
        wall, reason = self.wall, verdict.decision.reason
        plan.mode = Mode.FAIL_CLOSED
        plan.fallback = Fallback(
            render=lambda: wall.wall_page(visitor, reason), headers=self._fallback_headers
        )
        plan.refuse = _why_not_cuttable(plan, status, first_kind)
        if plan.refuse is not None:
            return
        try:
            plan.operations = self._operations(visitor, head, verdict, plan)
        except Exception as exc:
            plan.refuse = f"cannot rewrite: {reason_of(exc)}"

    def _operations(
        self,
        visitor: Visitor,
        head: ResponseHead,
        verdict: ArticleVerdict | None,
        plan: ResponsePlan,
    ) -> list[Operation]:
        """Consent's operations and the wall's, run in one pass."""
        operations, cookies = self.consent.operations(visitor, head.get(b"content-security-policy"))
        if verdict is not None:
            # Looked up on the instance each time: a fault-injection test replaces it.
            operations.extend(self.wall.operations(visitor, verdict))
        plan.set_cookies.extend(cookies)
        return operations


class ClassSharing:
    """When a rewritten page is the same for every reader of its consent class.

    Only a free page (no article verdict), for a reader without a session, that the app
    itself marks public, answered 200, with no cookie on it, whose reader's class cookie
    names their real class: a forged or stale cookie gets a private page, so no copy of
    one class can be stored under another's key.
    """

    def __init__(
        self, class_cookie: str, optional: frozenset[str], country_header: str | None
    ) -> None:
        self._cookie = class_cookie
        self._optional = optional
        # What the page depends on besides the class and the frame: the language and
        # the GPC note, and the regime when it is chosen per country.
        vary = ["Accept-Language", "Sec-GPC"]
        if country_header:
            vary.append(country_header)
        self._vary = tuple(vary)

    def mark(self, plan: ResponsePlan, visitor: Visitor, head: ResponseHead, status: int) -> None:
        if status != 200 or visitor.user_id is not None or plan.set_cookies:
            return
        if plan.expire_cookies or head.has_set_cookie:
            return
        if not _says_public(head.get(b"cache-control")):
            return
        found = consent_class(visitor.consent, self._optional)
        if visitor.cookies.get(self._cookie, UNDECIDED) != found:
            return
        plan.cache = Cache.CLASS
        plan.consent_class = found
        plan.class_vary = self._vary


def _says_public(cache_control: str | None) -> bool:
    """The app lets shared caches keep the page: ``public`` or ``s-maxage``, and neither
    ``private`` nor ``no-store``."""
    if not cache_control:
        return False
    names = {d.strip().lower().split("=", 1)[0] for d in cache_control.split(",")}
    return bool(names & {"public", "s-maxage"}) and not names & {"private", "no-store"}


class RequestPlanner:
    """The planner bound to one request (see :class:`consentgate.plan.PlanFor`)."""

    __slots__ = ("_cookies", "_level", "_path", "_planner", "_scope", "_visitor")

    def __init__(
        self,
        planner: ResponsePlanner,
        scope: Scope,
        visitor: Visitor,
        set_cookies: Sequence[str],
        route_level: AccessLevel,
    ) -> None:
        self._planner = planner
        self._scope = scope
        self._visitor = visitor
        self._cookies = set_cookies
        self._level = route_level
        # The path the level was decided for: an app that changes scope["path"] in place
        # (a router) gets its new path decided again.
        self._path = scope["path"]

    def untouched(self, raw_headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """See :meth:`consentgate.plan.PlanFor.untouched`."""
        # The level is the route rules' for the path the request came in on: an app that
        # changed scope["path"] since (a router) is planned in full, by its new path.
        if self._cookies or self._level is not _FREE or self._scope["path"] is not self._path:
            return False
        for name, value in raw_headers:
            if name in _PLAIN_HEADERS:
                continue  # the names most responses carry, none of which we act on
            if name != b"content-type":
                name = name.lower()
                if name in _ACTIONABLE_HEADERS:
                    return False
                if name != b"content-type":
                    continue
            # Any HTML takes the full plan, whatever its status or encoding.
            if (
                _html_content_type(value)
                if len(value) <= _CACHED_HEADER_CHARS
                else is_rewritable_content_type(value.decode("latin-1"))
            ):
                return False
        visitor = self._visitor
        reading = visitor.reading
        expiries = reading.expiries if reading is not None else None
        if expiries is None:
            expiries = self._planner.consent.expiries(visitor)
        return not expiries

    async def __call__(self, headers: MutableHeaders, status: int, first_kind: str) -> ResponsePlan:
        scope = self._scope
        level = self._level if scope["path"] is self._path else None
        return await self._planner.plan(
            scope, self._visitor, self._cookies, headers, status, first_kind, level
        )


def _rewritable(plan: ResponsePlan, status: int) -> bool:
    if status in _NO_BODY_STATUSES or status < 200 or status == 206:
        return False
    return _decodable_html(plan)


def _decodable_html(plan: ResponsePlan) -> bool:
    """HTML, and any Content-Encoding one we can undo."""
    content_type, encoding = plan.content_type, plan.content_encoding
    if len(content_type or "") + len(encoding or "") > _CACHED_HEADER_CHARS:
        return is_rewritable(content_type, encoding, allow_decoding=True)
    return _rewritable_head(content_type, encoding)


@functools.lru_cache(maxsize=256)
def _html_content_type(value: bytes) -> bool:
    """Per raw Content-Type value: an app sends a handful of distinct ones."""
    return is_rewritable_content_type(value.decode("latin-1"))


@functools.lru_cache(maxsize=256)
def _rewritable_head(content_type: str | None, content_encoding: str | None) -> bool:
    """Per (Content-Type, Content-Encoding): an app sends a handful of distinct pairs."""
    return is_rewritable(content_type, content_encoding, allow_decoding=True)


def _why_not_cuttable(plan: ResponsePlan, status: int, first_kind: str) -> str | None:
    if status == 206:
        return "the app answered a byte range (206) of a walled article"
    if first_kind != "http.response.body":
        return f"the app sent {first_kind!r}, which cannot be cut"
    content_type, encoding = plan.content_type, plan.content_encoding
    if _decodable_html(plan):
        return None
    if not is_rewritable_content_type(content_type):
        return f"content type {content_type!r} cannot be cut"
    return f"content encoding {encoding!r} cannot be undone"
