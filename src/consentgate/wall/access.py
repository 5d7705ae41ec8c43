"""Which articles are free, metered or for registered readers, and who may read them.

Two steps, kept apart so the second is a pure function that tests can tabulate:

* :func:`article_access` finds the article's level: the app's response headers
  (``Consentgate-Access``, ``Consentgate-Article-Id``) first, then route rules;
* :func:`decide_access` decides, from that level and what is known about the reader,
  whether the full article is sent, and whether the meter must record the read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from consentgate.wall.meter import MeterState

__all__ = [
    "ACCESS_HEADER",
    "ARTICLE_ID_HEADER",
    "AccessDecision",
    "AccessLevel",
    "AccessReason",
    "AccessRules",
    "ArticleAccess",
    "RouteRule",
    "article_access",
    "compile_path_pattern",
    "decide_access",
]

ACCESS_HEADER = "consentgate-access"
ARTICLE_ID_HEADER = "consentgate-article-id"


class AccessLevel(enum.Enum):
    FREE = "free"
    METERED = "metered"
    REGISTERED = "registered"

    @classmethod
    def parse(cls, value: str | None) -> AccessLevel | None:
        """A header value, case-insensitively; None when absent or unknown.

        None rather than an exception: the caller logs the app's mistake and falls back
        to the route rules instead of failing the reader's request.
        """
        if value is None:
            return None
        try:
            return cls(value.strip().lower())
        except ValueError:
            return None


def compile_path_pattern(pattern: str) -> re.Pattern[str]:
    """A glob for URL paths: ``*`` stays within one segment, ``**`` crosses segments.

    ``/a/**/b`` also matches ``/a/b`` (as in gitignore); everything else is literal, so
    a ``.`` or ``?`` in a pattern means just that character. The whole path must match.
    """
    if not pattern.startswith("/"):
        raise ValueError(f"a path pattern starts with '/', got {pattern!r}")
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts), re.DOTALL)


class PathPatterns:
    """Several path patterns as one expression, compiled once: does any match the path?"""

    __slots__ = ("_regex",)

    def __init__(self, patterns: Iterable[str]) -> None:
        sources = [f"(?:{compile_path_pattern(p).pattern})" for p in patterns]
        self._regex = re.compile("|".join(sources), re.DOTALL) if sources else None

    def matches(self, path: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class RouteRule:
    """``/articles/*`` → METERED: compiled once, at construction."""

    pattern: str
    access: AccessLevel
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_path_pattern(self.pattern))

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


class AccessRules:
    """Route rules in order; the first that matches wins, else ``default``."""

    def __init__(self, rules: Iterable[RouteRule], default: AccessLevel = AccessLevel.FREE) -> None:
        self._rules = tuple(rules)
        self._default = default
        # Every rule in one alternation, in order: one C call per path, and the first
        # alternative that matches the whole path is the first rule that matches.
        self._combined = (
            re.compile(
                "|".join(f"(?P<r{i}>{rule.regex.pattern})" for i, rule in enumerate(self._rules)),
                re.DOTALL,
            )
            if self._rules
            else None
        )

    @property
    def rules(self) -> tuple[RouteRule, ...]:
        return self._rules

    @property
    def default(self) -> AccessLevel:
        return self._default

    def level_for(self, path: str) -> AccessLevel:
        combined = self._combined
        match = combined.fullmatch(path) if combined is not None else None
        if match is None or match.lastgroup is None:
            return self._default
        return self._rules[int(match.lastgroup[1:])].access


@dataclass(frozen=True, slots=True)
class ArticleAccess:
    """The article's level and id; ``invalid_header`` holds a rejected header to log."""

    level: AccessLevel
    article_id: str
    invalid_header: str | None = None


def article_access(
    path: str,
    header_access: str | None,
    header_article_id: str | None,
    rules: AccessRules,
    *,
    route_level: AccessLevel | None = None,
) -> ArticleAccess:
    """The app's headers win over the route rules; the id defaults to the path.

    The app knows its articles better than a URL pattern does (a free article under a
    metered section, one article under two URLs), hence the precedence. The query string
    is never part of the default id, so ``?utm_source=…`` cannot make a new article.
    ``route_level``: what ``rules`` say of this path, when the caller has asked them already.
    """
    bare_path = path.split("?", 1)[0]
    level = AccessLevel.parse(header_access)
    invalid = header_access if header_access is not None and level is None else None
    if level is None:
        level = rules.level_for(bare_path) if route_level is None else route_level
    article_id = (header_article_id or "").strip() or bare_path
    return ArticleAccess(level=level, article_id=article_id, invalid_header=invalid)


class AccessReason(enum.Enum):
    FREE = "free"
    SIGNED_IN = "signed_in"
    METER_ALLOWS = "meter_allows"
    ALREADY_READ = "already_read"
    METER_EXHAUSTED = "meter_exhausted"
    METER_TAMPERED = "meter_tampered"
    REGISTRATION_REQUIRED = "registration_required"
    POLICY_ACCEPTANCE_NEEDED = "policy_acceptance_needed"
    VERIFICATION_NEEDED = "verification_needed"
    VERIFIED_CRAWLER = "verified_crawler"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """``full``: send the whole article. ``count_read``: the meter must record it."""

    full: bool
    reason: AccessReason
    count_read: bool = False


def decide_access(
    level: AccessLevel,
    article_id: str,
    *,
    user_id: str | None,
    needs_policy_acceptance: bool,
    meter: MeterState,
    limit: int,
    verified_crawler: bool,
    needs_verification: bool = False,
) -> AccessDecision:
    """The decision table, in order (the first row that applies decides).

    ``meter`` must hold only the reads active now, as :meth:`MeterCookieCodec.loads`
    and :meth:`MeterWindow.active` return it: this function has no clock.

    1. free article → full;
    2. verified crawler → full (the page carries the paywall markup, so this is not
       cloaking);
    3. signed-in reader → full, unless they must first accept a new privacy policy, or
       verify their address (``needs_verification``: accounts.verification says when);
    4. registered-only article → registration required;
    5. metered: a tampered meter is exhausted; an article already counted is free to
       re-read; fewer than ``limit`` distinct reads → full and count it; else exhausted.
    """
    if level is AccessLevel.FREE:
        return AccessDecision(True, AccessReason.FREE)
    if verified_crawler:
        return AccessDecision(True, AccessReason.VERIFIED_CRAWLER)
    if user_id:  # an empty id is no sign-in
        if needs_policy_acceptance:
            return AccessDecision(False, AccessReason.POLICY_ACCEPTANCE_NEEDED)
        if needs_verification:
            return AccessDecision(False, AccessReason.VERIFICATION_NEEDED)
        return AccessDecision(True, AccessReason.SIGNED_IN)
    if level is AccessLevel.REGISTERED:
        return AccessDecision(False, AccessReason.REGISTRATION_REQUIRED)
    return _metered_decision(article_id, meter, limit)


def _metered_decision(article_id: str, meter: MeterState, limit: int) -> AccessDecision:
    # Tampered first: its reads are untrusted, so "already read" must not apply either.
    if meter.tampered:
        return AccessDecision(False, AccessReason.METER_TAMPERED)
    if meter.has_article(article_id):
        return AccessDecision(True, AccessReason.ALREADY_READ)
    if len(meter.article_keys) < limit:
        return AccessDecision(True, AccessReason.METER_ALLOWS, count_read=True)
    return AccessDecision(False, AccessReason.METER_EXHAUSTED)
