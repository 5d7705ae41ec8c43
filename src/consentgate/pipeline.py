"""The consent part of a response plan: where consent meets the HTML rewriter.

``consent/`` decides *what* (which categories are granted, which texts to show);
``rewrite/`` knows *how* to change HTML as it streams. This module is the one place
that knows both, so that neither has to know the other.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from consentgate.consent.consent_mode import consent_mode_script
from consentgate.consent.cookies import cookie_name_from_set_cookie, expire_cookie_headers
from consentgate.metrics import BANNER_IMPRESSIONS
from consentgate.plan import CookieFilter
from consentgate.rewrite import (
    AttributesCallback,
    InsertHTML,
    Operation,
    RewriteAttributes,
    compile_selector,
)
from consentgate.wall.access import PathPatterns
from consentgate.web.security import safe_next
from consentgate.web.templates import render_banner, render_settings_control

if TYPE_CHECKING:
    from consentgate.config import Config, RegionMode
    from consentgate.consent.cookies import CookieRegistry
    from consentgate.consent.state import Consent
    from consentgate.metrics import Metrics
    from consentgate.visitor import Visitor
    from consentgate.web.pages import PageKit

logger = logging.getLogger("consentgate")

# Compiled once: selectors are parsed at import, not on every response.
GATED_ELEMENTS = compile_selector("script[data-consent], iframe[data-consent]")
CONSENT_MAX_TOKEN_BYTES = 16 << 20
# The URLs of ordinary pages; a longer one (query strings) is rendered each time.
_CACHED_URL_CHARS = 256
# (banner or settings link, language, granted, decided, GPC, regime, token, next, nonce)
_InsertionKey = tuple[
    bool, str, frozenset[str], bool, bool, "RegionMode", str, str, "str | None", bool
]
# Readers with more (or longer) cookie names are worked out each time: the cache of
# expiries stays small (at most 4096 entries of a few hundred bytes) under any input.
_CACHED_NAMES = 40
_CACHED_NAME_CHARS = 600
_CSP_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")


class ConsentPlanner:
    """The consent part of every response's plan: what is inserted, activated, kept and
    expired for this reader. Built once per middleware."""

    def __init__(
        self, config: Config, registry: CookieRegistry, pages: PageKit, metrics: Metrics
    ) -> None:
        self._config = config
        self._registry = registry
        self._pages = pages
        self._metrics = metrics
        self._no_banner_paths = PathPatterns(config.exclude_paths)
        self._unknown_cookies_logged: set[str] = set()
        # A reader sends the same cookie names with the same consent page after page:
        # the expiries are worked out once per (names, granted). Returned as tuples, so
        # no caller can change a cached answer.
        self._expiries = functools.lru_cache(maxsize=4096)(self._expiries_for)
        # The banner (or settings link) of a page depends on the reader's class, language,
        # regime, GPC, the page's URL and a CSP nonce, and, only where a page is private,
        # a token: the same few combinations come back page after page. Rendering one costs
        # more than rewriting a small page, so each is rendered once (bounded: 512 of a
        # few KB), as is the operation carrying it and the activation of each granted set.
        self._insertions = functools.lru_cache(maxsize=512)(self._insertion)
        self._activations = functools.lru_cache(maxsize=256)(self._activation)
        # The Consent Mode block, per consent; with a CSP nonce (one per response) it is
        # rendered each time, which would only churn the cache.
        self._consent_modes = functools.lru_cache(maxsize=256)(self._consent_mode)
        # One Set-Cookie filter per (consent, whether unknown cookies are blocked): the
        # same few come back on every response.
        self._filters = functools.lru_cache(maxsize=256)(self._filter)
        self._any_excluded_path = bool(config.exclude_paths)

    def operations(
        self, visitor: Visitor, content_security_policy: str | None
    ) -> tuple[list[Operation], list[str]]:
        """The rewriter's consent operations for this page, and any Set-Cookie our
        insertions need (a CSRF token)."""
        nonce = _script_nonce(content_security_policy)
        operations: list[Operation] = []
        if self._config.consent_mode.enabled:
            consent_mode = self._consent_mode if nonce else self._consent_modes
            operations.append(consent_mode(visitor.consent, nonce))
        operations.append(self._activations(visitor.consent))
        cookies: list[str] = []
        if self.shows_banner(visitor):
            insertion, cookies = self._banner_or_control(visitor, nonce)
            operations.append(insertion)
        return operations, cookies

    def _consent_mode(self, consent: Consent, nonce: str | None) -> InsertHTML:
        script = consent_mode_script(self._config, consent)
        nonce_attr = f' nonce="{nonce}"' if nonce else ""
        return InsertHTML.after_head_open(f"<script{nonce_attr}>{script}</script>")

    def _activation(self, consent: Consent) -> RewriteAttributes:
        return RewriteAttributes(GATED_ELEMENTS, activation(consent))

    def shows_banner(self, visitor: Visitor) -> bool:
        """Whether the page gets the banner (or, once decided, the settings link): not a
        page requested for a frame, whose parent page shows them (a second banner inside
        an embed would take the keyboard focus), nor one under ``exclude_paths``."""
        if visitor.framed:
            return False
        if not self._any_excluded_path:
            return True
        return not self._no_banner_paths.matches(visitor.path_with_query.partition("?")[0])

    def _banner_or_control(
        self, visitor: Visitor, nonce: str | None
    ) -> tuple[InsertHTML, list[str]]:
        path = visitor.path_with_query
        next_url = _safe_next(path) if len(path) <= _CACHED_URL_CHARS else safe_next(path)
        consent = visitor.consent
        banner = consent.needs_banner
        token, cookie = "", None
        if banner and not (self._config.shared_cache and visitor.user_id is None):
            token, cookie = self._pages.csrf_token_for(visitor)
        # Otherwise no token: the control is a plain link (no form), and a banner on a page
        # every undecided reader may share holds no token of this browser (nor a cookie to
        # mint); the browser's Origin / Fetch Metadata vouch for its posts instead
        # (web/forms.check_csrf).
        if banner:
            self._metrics.add(BANNER_IMPRESSIONS)
        key = (
            banner,
            visitor.language,
            consent.granted if consent.decided else frozenset(),
            consent.decided,
            visitor.gpc,
            visitor.mode,
            token,
            next_url,
            nonce,
            self._pages.signed_in(visitor),
        )
        # A reader's own token, or an unusually long URL, would only churn the cache.
        cacheable = not token and len(next_url) <= _CACHED_URL_CHARS
        insertion = self._insertions(key) if cacheable else self._insertion(key)
        return insertion, [cookie] if cookie else []

    def _insertion(self, key: _InsertionKey) -> InsertHTML:
        banner, language, granted, decided, gpc, mode, token, next_url, nonce, signed_in = key
        context = self._pages.context_of(
            language, granted, decided, gpc, mode, token, next_url, nonce, signed_in=signed_in
        )
        html = render_banner(context) if banner else render_settings_control(context)
        return InsertHTML.before_body_close(html)

    def expiries(self, visitor: Visitor) -> tuple[str, ...]:
        """Set-Cookie headers that expire the reader's cookies of refused categories."""
        reading = visitor.reading
        if reading is not None:
            # The same for every request of this reading (its cookies and consent).
            found = reading.expiries
            if found is None:
                found = reading.expiries = self._reading_expiries(visitor)
            return found
        return self._reading_expiries(visitor)

    def _reading_expiries(self, visitor: Visitor) -> tuple[str, ...]:
        consent, names = visitor.consent, tuple(visitor.cookies)
        if len(names) > _CACHED_NAMES or sum(map(len, names)) > _CACHED_NAME_CHARS:
            # A cookie jar no real reader has: worked out each time, never kept.
            return self._expiries_for(names, consent.granted, consent.categories)
        return self._expiries(names, consent.granted, consent.categories)

    def _expiries_for(
        self, names: tuple[str, ...], granted: frozenset[str], categories: tuple[str, ...]
    ) -> tuple[str, ...]:
        denied = frozenset(categories) - granted
        return tuple(expire_cookie_headers(names, self._registry, denied))

    def cookie_filter(self, visitor: Visitor) -> CookieFilter:
        """Which of the app's Set-Cookie headers this reader allowed."""
        return self._filters(visitor.consent, self._config.blocks_unknown_cookies(visitor.mode))

    def _filter(self, consent: Consent, blocks_unknown: bool) -> CookieFilter:
        registry = self._registry

        def allowed(name: str) -> bool:
            category = registry.category_of(name)
            if category is None:
                if blocks_unknown:
                    self._log_unknown_cookie_once(name)
                    return False
                return True
            return consent.allows(category)

        def keep(values: Sequence[str]) -> tuple[list[str], bool]:
            # As consent.cookies.filter_set_cookie_headers, without the report of what was
            # dropped (nobody reads it here): a value no browser would store goes too.
            kept: list[str] = []
            dropped = False
            for value in values:
                name = (
                    _cookie_name(value)
                    if len(value) <= _CACHED_SET_COOKIE_CHARS
                    else cookie_name_from_set_cookie(value)
                )
                if name is not None and allowed(name):
                    kept.append(value)
                else:
                    dropped = True
            return kept, dropped

        return keep

    def _log_unknown_cookie_once(self, name: str) -> None:
        """One log line per unknown name: enough to fix the registry, no log flood."""
        logged = self._unknown_cookies_logged
        if name in logged or len(logged) > 10_000:
            return
        logged.add(name)
        logger.warning(
            "consentgate: blocked cookie %r, which is in no category of the registry; "
            "add it to [[cookies]] to allow it with its category",
            name,
        )


def activation(consent: Consent) -> AttributesCallback:
    """Turn inert ``data-consent`` elements live when their category is granted."""

    def activate(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
        category = attrs.get("data-consent", "")
        if not consent.allows(category):
            return None
        if tag == "script":
            return _live_script(attrs)
        if tag == "iframe" and "data-src" in attrs:
            live = {k: v for k, v in attrs.items() if k != "data-src"}
            live["src"] = attrs["data-src"]
            return live
        return None

    return activate


def _live_script(attrs: dict[str, str]) -> dict[str, str] | None:
    if attrs.get("type", "").strip().lower() != "text/plain":
        return None  # already live, or a data block we must not turn into code
    live = {k: v for k, v in attrs.items() if k not in ("type", "data-src", "data-type")}
    if "data-type" in attrs:
        live["type"] = attrs["data-type"]
    if "data-src" in attrs:
        live["src"] = attrs["data-src"]
    return live


# The name a browser stores from a Set-Cookie value: an app sends the same values (a
# language, a preference) page after page. Bounded in number and in length.
_CACHED_SET_COOKIE_CHARS = 512
_cookie_name = functools.lru_cache(maxsize=4096)(cookie_name_from_set_cookie)
# Where to come back to, per URL of ordinary length: a site has a bounded set of pages
# read again and again.
_safe_next = functools.lru_cache(maxsize=2048)(safe_next)


def _script_nonce(csp: str | None) -> str | None:
    """Reuse the page's CSP nonce, so our script runs under a strict policy too."""
    if not csp:
        return None
    match = _CSP_NONCE.search(csp)
    return match.group(1) if match else None
