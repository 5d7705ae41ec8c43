"""The ASGI entry point: read the visitor, route our endpoints, wrap the app's ``send``.

Pure ASGI on purpose (no ``BaseHTTPMiddleware``): responses stream through, and
context variables set by the app keep working.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentgate.accounts.links import Links
from consentgate.accounts.newsletters import Newsletters
from consentgate.accounts.ratelimit import (
    Backoff,
    MemoryBackoff,
    MemoryRateLimiter,
    RateLimiter,
)
from consentgate.accounts.service import AcceptanceMethod, Accounts
from consentgate.accounts.sessions import SessionCodec, SessionStore
from consentgate.api import SiteAPI
from consentgate.articles import ArticleGate, WallLinks
from consentgate.config import NO_SECRET_KEY, Config, ConfigError, WallSettings
from consentgate.consent.banner_hash import BannerHashes
from consentgate.consent.classes import consent_class
from consentgate.consent.cookies import CookieRegistry, CookieRule
from consentgate.consent.ledger import GPC_WITHOUT_COOKIE, Ledger
from consentgate.consent.state import ConsentCookieCodec, Decision, record_gpc
from consentgate.keys import Keys
from consentgate.mail.sender import OutboxSender, sender_from_settings
from consentgate.metrics import Metrics
from consentgate.operator.dashboard import dashboard_routes
from consentgate.pipeline import ConsentPlanner
from consentgate.planner import ClassSharing, ResponsePlanner
from consentgate.responder import Responder
from consentgate.rewrite import RewriteMemo
from consentgate.storage import (
    AcceptanceRecord,
    MeterReads,
    SchemaTooNewError,
    SchemaTooOldError,
    Storage,
    StorageError,
    storage_from_url,
)
from consentgate.storage.breaker import (
    CircuitBreaker,
    close_request_budget,
    open_request_budget,
)
from consentgate.visitor import Visitor, VisitorReader
from consentgate.wall.crawlers import Resolver
from consentgate.wall.meter import MeterStore
from consentgate.web.accounts import AccountEndpoints
from consentgate.web.cookies import OwnCookies, decision_cookie_headers
from consentgate.web.endpoints import Endpoints
from consentgate.web.newsletters import NewsletterEndpoints
from consentgate.web.pages import FailureResponse, PageKit
from consentgate.web.security import CsrfTokens

logger = logging.getLogger("consentgate")

# async (scope) -> user id or None: how a site with its own accounts tells us who reads.
UserResolver = Callable[[Scope], Awaitable[str | None]]


class ConsentGate:
    """Wrap an ASGI app: ``ConsentGate(app, config=Config.from_toml("consentgate.toml"))``.

    Keyword options are the keys of the TOML file, for configuration in code:
    ``ConsentGate(app, secret_keys=[...], database_url="sqlite:///consent.db")``.
    """

    def __init__(
        self,
        app: ASGIApp,
        /,
        config: Config | None = None,
        *,
        storage: Storage | None = None,
        failure_response: FailureResponse | None = None,
        crawler_resolver: Resolver | None = None,
        user_resolver: UserResolver | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = Config.from_mapping(options)
        elif options:
            raise TypeError(
                f"pass either config= or keyword options, not both (got {sorted(options)})"
            )
        if not config.secret_keys:
            raise ConfigError("secret_keys", NO_SECRET_KEY)
        self.app = app
        self.config = config
        # The composition root: each service is built once, here, and given only what it
        # needs; none of them holds the middleware.
        # One key ring signs every cookie and token we hand out (a salt per purpose).
        self.keys = Keys(config.secret_keys)
        self.codec = ConsentCookieCodec(config, self.keys)
        self.visitors = VisitorReader(config, self.codec)
        self._session_cookie = config.cookie_names.session
        self._optional = config.optional_category_ids
        self.registry = CookieRegistry(_registry_rules(config))
        self.cookies = OwnCookies.from_config(config)
        # The site's own app serves the layout our reader pages are set into (web/shell.py).
        self.pages = PageKit(config, CsrfTokens(self.keys), self.cookies, failure_response, app=app)
        # One storage for the ledger, accounts, sessions and (when in the database) the
        # meter; each component is typed with the port it uses.
        store: Storage = storage or storage_from_url(config.database_url)
        self.ledger = Ledger(store, config)
        self.banner_hashes = BannerHashes(config)
        opener = self.ledger.ensure_open
        self.accounts = Accounts(
            store,
            config.secret_keys,
            config.policy,
            min_password_length=config.accounts.min_password_length,
            opener=opener,
        )
        # What the app's own code gets on request.state.consentgate: never the middleware.
        self.api = SiteAPI(self.accounts, config.trusted_proxies, config.trusted_proxy_header)
        self.sessions = SessionStore(
            store,
            SessionCodec(self.keys, config.accounts.session_lifetime_days),
            opener=opener,
        )
        self.redis: Any = _redis_client(config)
        self.rate_limiter = _rate_limiter(self.redis)
        self.backoff = _backoff(self.redis)
        # One HTTP request waits on storage for at most this long in all (None: each
        # call has only its own bound): see _storage_budget.
        self.storage_budget: float | None = _storage_budget(store, self.redis)
        self.user_resolver = user_resolver
        # Mail waits in the outbox (written with what caused it) until this sends it.
        self.mail_sender: OutboxSender | None = sender_from_settings(
            config.mail, store, site_name=config.site_name, opener=opener
        )
        # What code that has just written mail calls: send now, not at the next poll.
        self.wake_mail: Callable[[], None] = (
            self.mail_sender.wake if self.mail_sender is not None else _no_mail_sender
        )
        if self.mail_sender is None and config.accounts.enabled:
            logger.warning(
                "consentgate: mail is not configured ([mail] transport); messages to "
                "readers wait in the outbox and go out once it is"
            )
        self.metrics = Metrics(self.ledger)
        self.endpoints = Endpoints(
            self.pages, self.ledger, self.registry, self.codec, self.banner_hashes
        )
        self.newsletters = Newsletters(
            store,
            config.newsletters,
            Links(self.keys, store),
            public_url=config.public_url,
            prefix=config.prefix,
            site_name=config.site_name,
            opener=opener,
            wake=self.wake_mail,
        )
        self.account_endpoints = AccountEndpoints(
            self.pages,
            self.accounts,
            self.sessions,
            self.rate_limiter,
            self.backoff,
            self.metrics,
            storage=store,
            wake=self.wake_mail,
            newsletters=self.newsletters,
        )
        if config.accounts.enabled:
            self.endpoints.add_routes(self.account_endpoints.routes())
            newsletter_endpoints = NewsletterEndpoints(self.pages, self.accounts, self.newsletters)
            self.endpoints.add_routes(newsletter_endpoints.routes())
        self.endpoints.add_routes(
            dashboard_routes(self.pages, self.keys, store, opener, self.backoff)
        )
        self.articles = self._article_gate(crawler_resolver, store)
        self.planner = ResponsePlanner(
            ConsentPlanner(config, self.registry, self.pages, self.metrics),
            self.articles,
            self.metrics,
            fallback_headers=dict(self.pages.page_security_headers),
            classes=_class_sharing(config),
        )
        # Whole pages rewritten once per set of operations, for every response after.
        self.memo = (
            RewriteMemo(max_bytes=config.rewrite_memo_mb << 20) if config.rewrite_memo_mb else None
        )

    def _article_gate(self, resolver: Resolver | None, store: MeterReads) -> ArticleGate:
        config, wall = self.config, self.config.wall
        meter_store: MeterStore | None = None
        database = None
        if wall.meter.store == "server":
            if self.redis is None:
                # Reads in the database: opened on use, pruned now and then.
                meter_store = store
                database = (self.ledger.ensure_open, store.prune_reads)
            else:
                from consentgate.storage.redis import RedisMeterStore

                meter_store = RedisMeterStore(self.redis, retention=_meter_retention(wall))
        return ArticleGate(
            wall,
            languages=config.languages,
            site_name=config.site_name,
            links=WallLinks.under(config.prefix, wall, self.pages.static_url("wall.css")),
            keys=self.keys,
            meter_cookie=self.cookies.meter,
            needs_policy_acceptance=self.accounts.needs_policy_acceptance,
            needs_verification=self._needs_verification,
            meter_store=meter_store,
            database=database,
            resolver=resolver,
        )

    async def _needs_verification(self, user_id: str) -> bool:
        """Whether a signed-in reader stays at the wall until they verify their address
        (accounts.verification); only our own accounts have addresses to verify."""
        if self.config.accounts.verification == "off" or not self.config.accounts.enabled:
            return False
        user = await self.accounts.user(user_id)
        return user is not None and self.accounts.verification_needed(user, self.config.accounts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                send = self._closing_storage_on_shutdown(send)
            await self.app(scope, receive, send)
            return
        if self.mail_sender is not None:
            # Without a lifespan (some servers, tests) the first request starts it.
            self.mail_sender.start()
        # Every storage call of this request, ours and the app's through our API, in
        # the middleware and while the response streams, shares one budget. (One
        # coroutine for the whole request: each level costs a frame, and most requests
        # are the app's, passed through.)
        budget = open_request_budget(self.storage_budget)
        try:
            visitor = self.visitors.read(scope)
            # Awaited only when there is someone to look up: most requests carry no session.
            if self.user_resolver is not None or self._session_cookie in visitor.cookies:
                user_id = await self._user_id(scope, visitor)
                if user_id is not None:
                    visitor = visitor.with_user(user_id)
            state = scope.setdefault("state", {})
            state["consent"] = visitor.consent
            state["consentgate"] = self.api
            # Our endpoints' paths start with one of a few roots (the prefix): the app's
            # requests are told apart without a call. Under a root_path, the router
            # strips it first.
            endpoint = (
                self.endpoints.match(scope)
                if scope["path"].startswith(self.endpoints.roots) or scope.get("root_path")
                else None
            )
            if endpoint is not None:
                await endpoint(scope, receive, send, visitor)
                return
            cookies: Sequence[str] = ()
            if visitor.gpc:
                new_decision = await self._record_gpc_signal(scope, visitor)
                if new_decision is not None:
                    visitor = visitor.with_decision(self.config, new_decision)
                    state["consent"] = visitor.consent
                    cookies = decision_cookie_headers(
                        self.cookies,
                        self.codec,
                        new_decision,
                        consent_class(visitor.consent, self._optional),
                        visitor.scheme,
                    )
            plan_for = self.planner.for_request(scope, visitor, cookies)
            await self.app(scope, receive, Responder(plan_for, scope, send, self.memo).send)
        finally:
            close_request_budget(budget)

    async def _user_id(self, scope: Scope, visitor: Visitor) -> str | None:
        """The signed-in reader: the site's own resolver, else our session cookie."""
        if self.user_resolver is not None:
            try:
                return await self.user_resolver(scope)
            except Exception:  # the site's code: a failure there means "not signed in"
                logger.exception("consentgate: user_resolver failed; treating as signed out")
                return None
        # A stored session: erasing the account deletes its sessions, logout its own.
        return await self.sessions.subject(visitor.cookies.get(self._session_cookie))

    # -- the API for sites with their own accounts (also on request.state.consentgate) ---
    async def record_policy_acceptance(
        self, scope: Scope, user_id: str, *, method: AcceptanceMethod = "external"
    ) -> AcceptanceRecord:
        """See :meth:`SiteAPI.record_policy_acceptance`."""
        return await self.api.record_policy_acceptance(scope, user_id, method=method)

    async def needs_policy_acceptance(self, user_id: str) -> bool:
        """See :meth:`SiteAPI.needs_policy_acceptance`."""
        return await self.api.needs_policy_acceptance(user_id)

    async def _record_gpc_signal(self, scope: Scope, visitor: Visitor) -> Decision | None:
        """Record a reader's GPC signal once per consent id; a new cookie when needed.

        The signal is honoured on every request whatever happens here (the Visitor
        applies it). Rows stay bounded: a page view without a consent cookie writes
        none. It is added to the day's GPC_WITHOUT_COOKIE counter and gets a cookie
        naming a new consent id with nothing recorded yet; a browser that sends it
        back gets its one ledger row then. A client that keeps no cookies (a script, a
        crawler) costs a counter increment per page, never a row.
        """
        if not visitor.gpc or not _is_page_navigation(scope):
            return None
        if visitor.decision is None:
            self.metrics.add(GPC_WITHOUT_COOKIE)
            return replace(record_gpc(self.config, None), gpc_at=None)
        if visitor.decision.gpc_at is not None:
            return None
        decision = record_gpc(self.config, visitor.decision)
        try:
            await self.ledger.record(
                decision,
                visitor,
                scope,
                action="gpc",
                method="gpc",
                granted=visitor.consent.granted,
                banner_hash=self.banner_hashes.of(visitor),
            )
        except StorageError:
            # The signal is honoured all the same; we just cannot prove we saw it yet,
            # so the cookie stays as it is: the next page, once storage is back, records it.
            logger.warning("consentgate: could not record a GPC signal; will retry")
            return None
        return decision

    def _closing_storage_on_shutdown(self, send: Send) -> Send:
        """Open the storage when the app has started; flush and close it at shutdown.

        Opening at start-up makes a too-old schema stop the server with a message
        saying to migrate, instead of failing readers one by one later.
        """

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                problem = await self._open_storage_at_startup()
                if problem is not None:
                    await send({"type": "lifespan.startup.failed", "message": problem})
                    return
                if self.mail_sender is not None:
                    self.mail_sender.start()
            if message["type"] == "lifespan.shutdown.complete":
                await asyncio.shield(self._shutdown())
            await send(message)

        return send_wrapper

    async def _open_storage_at_startup(self) -> str | None:
        try:
            await self.ledger.ensure_open()
        except (SchemaTooOldError, SchemaTooNewError) as exc:
            logger.error("consentgate: %s", exc)
            return f"consentgate: {exc}"
        except StorageError as exc:
            # A database that is down now may be back soon: start, answer 503 to
            # consent POSTs meanwhile, and retry on use.
            logger.warning("consentgate: storage not available at start-up (%s)", exc)
        return None

    async def _shutdown(self) -> None:
        if self.mail_sender is not None:
            # Before the storage closes: the message in flight is still marked.
            await self.mail_sender.stop()
        await self.metrics.close()
        await self.ledger.close()
        if self.redis is not None:
            await self.redis.aclose()


def _no_mail_sender() -> None:
    """wake_mail without a transport: the mail waits in the outbox."""


def _redis_client(config: Config) -> Any:
    """One Redis client per process for the meter and the rate limits (meter_url)."""
    if config.meter_url is None:
        return None
    try:
        from consentgate.storage.redis import redis_client_from_url
    except ImportError:
        raise ConfigError(
            "meter_url", "Redis needs the redis extra: install consentgate[redis]"
        ) from None
    return redis_client_from_url(config.meter_url)


def _class_sharing(config: Config) -> ClassSharing | None:
    if not config.shared_cache:
        return None
    return ClassSharing(
        config.cookie_names.consent_class,
        config.optional_category_ids,
        config.regions.country_header,
    )


def _storage_budget(storage: Storage, redis: Any) -> float | None:
    """How long one request may wait on storage in all: the longest ``call_timeout``
    of the stores it may call (the ledger's database URL, and Redis from meter_url).

    So a page view waits at most what one call may wait, however many calls it makes
    while a backend black-holes them (later calls get what is left, then nothing), and
    no single call is cut shorter than its own bound would allow on its own. A storage
    passed in without a breaker has no bound of ours; then only Redis sets it (or
    nothing does).
    """
    bounds = []
    breaker = getattr(storage, "breaker", None)
    if isinstance(breaker, CircuitBreaker):
        bounds.append(breaker.settings.call_timeout)
    if redis is not None:
        from consentgate.storage.redis import breaker_for

        bounds.append(breaker_for(redis).settings.call_timeout)
    return max(bounds, default=None)


def _meter_retention(wall: WallSettings) -> timedelta:
    """How long Redis keeps a read: past the longest period (a calendar month: 31 days)."""
    days = 31 if wall.meter.period == "calendar-month" else wall.meter.period_days
    return timedelta(days=days + 1)


def _rate_limiter(redis: Any) -> RateLimiter:
    if redis is None:
        return MemoryRateLimiter()
    from consentgate.storage.redis import RedisRateLimiter

    # If Redis fails, per-process limits still slow guessing down (see docs/scaling.md).
    return RedisRateLimiter(redis, fallback=MemoryRateLimiter())


def _backoff(redis: Any) -> Backoff:
    if redis is None:
        return MemoryBackoff()
    from consentgate.storage.redis import RedisBackoff

    return RedisBackoff(redis, fallback=MemoryBackoff())


def _is_page_navigation(scope: Scope) -> bool:
    if scope["method"] != "GET":
        return False
    headers = Headers(scope=scope)
    dest = headers.get("sec-fetch-dest")
    if dest is not None:
        return dest == "document"
    return "text/html" in headers.get("accept", "")


def _registry_rules(config: Config) -> tuple[CookieRule, ...]:
    """Our own cookies are strictly necessary (the meter's category is configurable)."""
    names = config.cookie_names
    own = tuple(
        CookieRule(pattern=name, category="necessary")
        for name in (names.consent, names.csrf, names.session)
    )
    meter = CookieRule(pattern=names.meter, category=config.wall.meter.category)
    return (*own, meter, *config.cookies)
