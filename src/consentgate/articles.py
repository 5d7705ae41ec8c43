"""The registration wall, per article response: who reads in full, and how the rest is cut.

``wall/`` decides in plain values (access levels, the meter, crawler verification,
JSON-LD, the call to action); ``rewrite/`` cuts HTML. This module joins them for one
response, as ``pipeline.py`` does for consent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from consentgate.rewrite import (
    Operation,
    RemoveElement,
    ShortContainer,
    TransformText,
    Truncate,
    compile_selector,
)
from consentgate.storage import StorageError
from consentgate.storage.breaker import without_request_budget
from consentgate.wall.access import (
    ACCESS_HEADER,
    ARTICLE_ID_HEADER,
    AccessDecision,
    AccessLevel,
    AccessReason,
    AccessRules,
    ArticleAccess,
    RouteRule,
    article_access,
    decide_access,
)
from consentgate.wall.crawlers import CrawlerVerifier, Resolver, SystemResolver
from consentgate.wall.cta import CtaTexts, cta_texts, render_cta, render_wall_page
from consentgate.wall.jsonld import accepts_jsonld_script, scrub_jsonld
from consentgate.wall.meter import (
    MeterCookieCodec,
    MeterState,
    MeterStore,
    MeterWindow,
    ServerMeter,
)

if TYPE_CHECKING:
    from starlette.types import Scope

    from consentgate.keys import Keys
    from consentgate.plan import ResponseHead
    from consentgate.visitor import Visitor
    from consentgate.wall.settings import WallSettings
    from consentgate.web.cookies import CookieSpec

logger = logging.getLogger("consentgate")
PRUNE_INTERVAL_SECONDS = 3600
# Headers the app sends to tell us about an article; they never leave us.
SIGNAL_HEADERS = (ACCESS_HEADER, ARTICLE_ID_HEADER)
_ACCESS_HEADER = ACCESS_HEADER.lower().encode("latin-1")
_ARTICLE_ID_HEADER = ARTICLE_ID_HEADER.lower().encode("latin-1")

# Every script with a type; which of them is JSON-LD is decided on the decoded attribute, as a
# browser would (case, whitespace, parameters), which a selector's exact match cannot say.
JSON_LD = compile_selector("script[type]")
# A <script> inside SVG or MathML is not raw text (its content is parsed as markup), so no text
# transform can scrub it; on a walled page it goes whole, JSON-LD or not.
FOREIGN_SCRIPTS = compile_selector("svg script, math script")
# The pages' URLs of ordinary length; a longer one (a query string) is rendered each time.
_CACHED_URL_CHARS = 256
# wall.short_article -> what a Truncate does with a container holding fewer paragraphs than
# the lead (see docs/wall.md).
SHORT_ARTICLE_POLICIES = {
    "cut": ShortContainer.CUT,
    "wall_page": ShortContainer.FAIL,
    "free": ShortContainer.KEEP,
}
# Request headers that would let a reader get at bytes past the cut: a byte range of the
# full article, a compressed body we would have to trust ourselves to undo, or a 304
# that revalidates a copy cached before the meter ran out.
_ARTICLE_REQUEST_HEADERS_DROPPED = frozenset(
    {b"range", b"if-range", b"if-none-match", b"if-modified-since", b"accept-encoding"}
)


# A module constant: a class attribute is looked up on every request.
_FREE = AccessLevel.FREE
# The levels of this many paths (of ordinary length) are kept: a few hundred KB at most.
_CACHED_PATHS = 4096
_CACHED_PATH_CHARS = 256


@dataclass(frozen=True, slots=True)
class ArticleVerdict:
    """What the wall decided for this response."""

    access: ArticleAccess
    decision: AccessDecision
    meter_cookie: str | None = None

    @property
    def gated(self) -> bool:
        return not self.decision.full


# Storage the server meter needs when its reads live in the database: open it on first
# use, and delete reads older than the period now and then (Redis expires its own).
Opener = Callable[[], Awaitable[None]]
Pruner = Callable[[datetime], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class WallLinks:
    """Where the wall sends readers, and the stylesheet its CTA needs."""

    register_url: str
    login_url: str
    policy_url: str
    stylesheet_url: str
    verify_url: str = ""

    @classmethod
    def under(cls, prefix: str, wall: WallSettings, stylesheet_url: str) -> WallLinks:
        return cls(
            register_url=wall.register_url or f"{prefix}/register",
            login_url=wall.login_url or f"{prefix}/login",
            policy_url=f"{prefix}/policy",
            stylesheet_url=stylesheet_url,
            verify_url=f"{prefix}/verify/resend",
        )


class ArticleGate:
    """Built once per middleware; holds the compiled rules, selectors and codecs."""

    def __init__(
        self,
        wall: WallSettings,
        *,
        languages: Sequence[str],
        site_name: str,
        links: WallLinks,
        keys: Keys,
        meter_cookie: CookieSpec,
        needs_policy_acceptance: Callable[[str], Awaitable[bool]],
        needs_verification: Callable[[str], Awaitable[bool]] | None = None,
        meter_store: MeterStore | None = None,
        database: tuple[Opener, Pruner] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """``meter_store``: where the server meter counts (``wall.meter.store = "server"``);
        ``database``: given when that store is the database, whose old reads we prune."""
        self._settings = wall
        self._site_name = site_name
        self._links = links
        self._meter_cookie_spec = meter_cookie
        self._needs_acceptance = needs_policy_acceptance
        self._needs_verification_of = needs_verification
        self._database = database
        self.rules = AccessRules(
            (RouteRule(r.path, AccessLevel(r.access)) for r in wall.rules),
            default=AccessLevel(wall.default_access),
        )
        self.window = MeterWindow(
            limit=wall.meter.limit,
            period_days=wall.meter.period_days,
            calendar_month=wall.meter.period == "calendar-month",
        )
        self.meter_codec = MeterCookieCodec(keys, self.window)
        # The JSON-LD scrub of a walled and of a read article: built once, so a page's
        # operations are the same objects response after response (the rewriter's set-up
        # and its memo of whole pages find them so).
        self._jsonld = {gated: self._jsonld_scrub(gated) for gated in (False, True)}
        self._cuts = functools.lru_cache(maxsize=1024)(self._cut_for)
        self._last_prune = 0.0
        self._prune_task: asyncio.Task[None] | None = None
        self.server_meter = (
            ServerMeter(meter_store, self.window, wall.meter.network_limit, keys.newest)
            if wall.meter.store == "server" and meter_store is not None
            else None
        )
        self.crawlers = (
            CrawlerVerifier(
                wall.crawlers.domains,
                wall.crawlers.ip_ranges,
                resolver or SystemResolver(),
                cache_seconds=wall.crawlers.cache_seconds,
                timeout_seconds=wall.crawlers.timeout_seconds,
            )
            if wall.crawlers.enabled
            else None
        )
        self._container = compile_selector(wall.article_selector)
        self._items = compile_selector(wall.paragraph_selector)
        self._removals = tuple(compile_selector(s) for s in wall.remove_selectors)
        # Built once, like every operation of a walled page (see _jsonld).
        self._removal_ops = (
            RemoveElement(FOREIGN_SCRIPTS),
            *(RemoveElement(selector) for selector in self._removals),
        )
        self._texts = {lang: _cta_texts(lang, wall.cta.get(lang, {})) for lang in languages}
        # The route rules' level per path, as prepare_request found it: a site's readers
        # ask for the same pages again and again, and a dict lookup costs less than the
        # rules' regex. Read-only for callers: a free path found here needs no
        # prepare_request (a path not found, or not free, does).
        self.route_levels: dict[str, AccessLevel] = {}
        #: No rule walls anything: every route is free.
        self.all_free = not (
            any(r.access != "free" for r in wall.rules) or wall.default_access != "free"
        )

    # -- before the app runs ----------------------------------------------------------
    def prepare_request(self, scope: Scope) -> AccessLevel:
        """For URLs the rules call articles, ask the app for the whole, plain page; the
        route's level (the app's headers may still change it).

        Responses the app marks by header alone are checked after the fact (a 206 or
        an encoding we cannot undo there ends in the wall page).
        """
        if self.all_free:
            return _FREE
        path: str = scope["path"]
        level = self.route_levels.get(path)
        if level is None:
            level = self.rules.level_for(path.split("?", 1)[0])
            if len(path) <= _CACHED_PATH_CHARS:
                levels = self.route_levels
                if len(levels) >= _CACHED_PATHS:
                    levels.pop(next(iter(levels)), None)  # the oldest path goes
                levels[path] = level
        if level is _FREE or scope["method"] not in ("GET", "HEAD"):
            return level
        scope["headers"] = [
            (name, value)
            for name, value in scope["headers"]
            if name.lower() not in _ARTICLE_REQUEST_HEADERS_DROPPED
        ]
        return level

    # -- when the response starts ----------------------------------------------------------
    def access_of(
        self, scope: Scope, head: ResponseHead, route_level: AccessLevel | None = None
    ) -> ArticleAccess:
        """The article's level and id (the app's signalling headers, SIGNAL_HEADERS, are
        for us alone: the plan drops them). ``route_level``: the route rules' level of
        this path when already decided (:meth:`prepare_request`)."""
        header_access = head.get(_ACCESS_HEADER)
        header_id = head.get(_ARTICLE_ID_HEADER)
        access = article_access(
            scope["path"], header_access, header_id, self.rules, route_level=route_level
        )
        if access.invalid_header is not None:
            logger.warning(
                "consentgate: %s sent %s: %r, which is not free, metered or registered; "
                "using the route rules (%s)",
                scope["path"],
                ACCESS_HEADER,
                access.invalid_header,
                access.level.value,
            )
        return access

    async def decide(self, visitor: Visitor, access: ArticleAccess) -> ArticleVerdict:
        now = time.time()
        meter = self.meter_codec.loads(visitor.cookies.get(self._meter_cookie_spec.name), now)
        decision = decide_access(
            access.level,
            access.article_id,
            user_id=visitor.user_id,
            needs_policy_acceptance=await self._needs_policy_acceptance(visitor),
            meter=meter,
            limit=self.window.limit,
            verified_crawler=await self._verified_crawler(visitor, access),
            needs_verification=await self._needs_verification(visitor, access),
        )
        if not decision.count_read and not (meter.tampered and meter.is_new):
            return ArticleVerdict(access, decision)
        return await self._count_read(visitor, access, decision, meter, now)

    async def _count_read(
        self,
        visitor: Visitor,
        access: ArticleAccess,
        decision: AccessDecision,
        meter: MeterState,
        now: float,
    ) -> ArticleVerdict:
        exhausted = AccessDecision(False, AccessReason.METER_EXHAUSTED)
        allowed_cookie = visitor.consent.allows(self._settings.meter.category)
        if meter.tampered:
            # An edited or forged meter cookie: the decision stands (exhausted for a
            # metered article) and the cookie is replaced by a fresh, signed, exhausted
            # one, so the bad value stops coming back and no reads are recorded.
            cookie = self._meter_cookie(visitor, meter) if allowed_cookie else None
            return ArticleVerdict(access, decision, meter_cookie=cookie)
        if not allowed_cookie:
            # The operator put the meter cookie under a category this reader refused:
            # a read we cannot count cannot be free, or every visit would be the first.
            return ArticleVerdict(access, exhausted)
        if self.server_meter is not None:
            try:
                if self._database is not None:
                    opener, prune = self._database
                    await opener()
                    self._prune_old_reads_now_and_then(now, prune)
                verdict = await self.server_meter.check_and_count(
                    meter.reader_id, visitor.client_ip, access.article_id, now
                )
            except StorageError as exc:
                # wall.meter.on_store_error: "cookie" lets the signed cookie decide alone
                # (an outage walls nobody extra); "wall" treats the read as over the limit.
                logger.warning("consentgate: server meter unavailable (%s)", exc)
                if self._settings.meter.on_store_error == "wall":
                    return ArticleVerdict(access, exhausted)
            else:
                if not verdict.allowed:
                    return ArticleVerdict(access, exhausted)
        counted = self.window.with_read(meter, access.article_id, now)
        return ArticleVerdict(access, decision, meter_cookie=self._meter_cookie(visitor, counted))

    def _meter_cookie(self, visitor: Visitor, state: MeterState) -> str:
        return self._meter_cookie_spec.header(
            self.meter_codec.dumps(state),
            max_age=self.window.period_days * 86_400 + 86_400,
            scheme=visitor.scheme,
        )

    def _prune_old_reads_now_and_then(self, now: float, prune: Pruner) -> None:
        """Reads older than the period count for nothing: delete them, hourly at most.

        Redis expires them by itself; in the database they would pile up for ever,
        and they are reading records we have no reason to keep.
        """
        if now - self._last_prune < PRUNE_INTERVAL_SECONDS or self._prune_task is not None:
            return
        self._last_prune = now
        before = datetime.fromtimestamp(self.window.starts_at(now) - 86_400, UTC)
        self._prune_task = asyncio.get_running_loop().create_task(self._prune(prune, before))

    async def _prune(self, prune: Pruner, before: datetime) -> None:
        try:
            with without_request_budget():  # a background task, not the request's work
                removed = await prune(before)
            logger.info("consentgate: pruned %d expired meter reads", removed)
        except StorageError as exc:
            logger.warning("consentgate: could not prune meter reads (%s)", exc)
        finally:
            self._prune_task = None

    async def _needs_policy_acceptance(self, visitor: Visitor) -> bool:
        if not visitor.user_id:
            return False
        try:
            return await self._needs_acceptance(visitor.user_id)
        except StorageError as exc:
            # The acceptance cannot be checked: wall.meter.on_store_error decides, as for
            # the server meter. "cookie" walls nobody extra during an outage (the reader
            # is signed in); "wall" treats the reader as not yet cleared.
            logger.warning("consentgate: policy acceptance not checked (%s)", exc)
            return self._settings.meter.on_store_error == "wall"

    async def _needs_verification(self, visitor: Visitor, access: ArticleAccess) -> bool:
        check = self._needs_verification_of
        if check is None or not visitor.user_id or access.level is AccessLevel.FREE:
            return False
        try:
            return await check(visitor.user_id)
        except StorageError as exc:
            # As for the policy check: wall.meter.on_store_error decides.
            logger.warning("consentgate: address verification not checked (%s)", exc)
            return self._settings.meter.on_store_error == "wall"

    async def _verified_crawler(self, visitor: Visitor, access: ArticleAccess) -> bool:
        if self.crawlers is None or access.level is AccessLevel.FREE or not visitor.client_ip:
            return False
        return await self.crawlers.is_verified(visitor.client_ip)

    # -- the rewrite ------------------------------------------------------------------------
    def operations(self, visitor: Visitor, verdict: ArticleVerdict) -> list[Operation]:
        """Paywall markup on every non-free article; the cut when the reader is walled."""
        gated = verdict.gated
        operations: list[Operation] = [self._jsonld[gated]]
        if not gated:
            return operations
        operations.extend(self._removal_ops)
        operations.append(self._cut(visitor, verdict.decision.reason))
        return operations

    def _jsonld_scrub(self, gated: bool) -> TransformText:
        css_class = self._settings.gated_class

        def jsonld(text: str) -> str:
            return scrub_jsonld(text, gated=gated, paywalled=True, css_class=css_class)

        return TransformText(JSON_LD, jsonld, accept=accepts_jsonld_script)

    def _truncate(self, cta: str) -> Truncate:
        settings = self._settings
        if settings.lead_words is not None:
            return Truncate(
                self._container,
                cta,
                keep_words=settings.lead_words,
                echo_guard=settings.echo_guard,
            )
        return Truncate(
            self._container,
            cta,
            keep_items=settings.lead_paragraphs,
            items=self._items,
            short=SHORT_ARTICLE_POLICIES[settings.short_article],
            fallback_words=settings.short_article_words,
            echo_guard=settings.echo_guard,
        )

    def _cut(self, visitor: Visitor, reason: AccessReason) -> Truncate:
        """The cut with its call to action: the same few (language, reason, page) come
        back reader after reader, so each is rendered once (an unusually long URL is not
        kept, so the cache stays small under any input)."""
        where = visitor.path_with_query
        if len(where) > _CACHED_URL_CHARS:
            return self._cut_for(visitor.language, reason, where)
        return self._cuts(visitor.language, reason, where)

    def _cut_for(self, language: str, reason: AccessReason, where: str) -> Truncate:
        return self._truncate(self._cta(language, reason, where))

    def cta_html(self, visitor: Visitor, reason: AccessReason) -> str:
        return self._cta(visitor.language, reason, visitor.path_with_query)

    def _cta(self, language: str, reason: AccessReason, where: str) -> str:
        # The stylesheet travels with the CTA: a <link> in <body> is valid HTML, and
        # pages that are never cut do not download it.
        stylesheet = f'<link rel="stylesheet" href="{self._links.stylesheet_url}">'
        return stylesheet + render_cta(
            self._texts_for(language), reason=reason, **self._urls(where)
        )

    def wall_page(self, visitor: Visitor, reason: AccessReason) -> bytes:
        """The page sent instead of an article we could not cut safely: CTA only."""
        page = render_wall_page(
            self._texts_for(visitor.language),
            title=self._site_name,
            reason=reason,
            lang=visitor.language,
            stylesheet_url=self._links.stylesheet_url,
            **self._urls(visitor.path_with_query),
        )
        return page.encode("utf-8")

    def _texts_for(self, language: str) -> CtaTexts:
        return self._texts.get(language) or cta_texts(language)

    def _urls(self, where: str) -> dict[str, str]:
        here = "?next=" + quote(where, safe="/")
        links = self._links
        return {
            "register_url": links.register_url + here,
            "login_url": links.login_url + here,
            "policy_url": links.policy_url + here,
            "verify_url": links.verify_url + here,
        }


def _cta_texts(lang: str, overrides: Mapping[str, Any]) -> CtaTexts:
    """Built-in wording for ``lang`` with the operator's ``[wall.cta.LANG]`` on top."""
    values: dict[str, Any] = {
        key: tuple(value) if key == "benefits" else value for key, value in overrides.items()
    }
    return replace(cta_texts(lang), **values)
