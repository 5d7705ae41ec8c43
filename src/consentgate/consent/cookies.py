"""Server-side enforcement of cookies by consent category.

Pure functions over header values: no HTTP framework, no configuration. The middleware
decides which categories are denied and calls these helpers to

* drop ``Set-Cookie`` headers whose cookie belongs to a denied category, and
* expire cookies of denied categories that the browser already holds.

Cookie names are parsed the way a browser following RFC 6265bis does, because the name
the browser stores (not the one a lenient server-side parser would see) is the one
that must be blocked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "CookieRegistry",
    "CookieRule",
    "FilteredSetCookies",
    "cookie_name_from_set_cookie",
    "cookie_names_from_cookie_header",
    "expire_cookie_headers",
    "filter_set_cookie_headers",
    "header_text",
]

# RFC 6265bis §5.6: a set-cookie-string holding any CTL except HTAB is ignored entirely.
_FORBIDDEN_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Only SP and HTAB count as whitespace around names and values (not NBSP, not U+3000).
_WSP = " \t"
# RFC 6265bis §5.6: name + value longer than this many octets makes the browser ignore it.
_MAX_NAME_VALUE_OCTETS = 4096
# A nameless cookie whose value looks like a prefixed name would let a script forge a
# "__Host-" cookie on the wire, so RFC 6265bis browsers refuse it.
_PREFIXES_FORBIDDEN_AS_NAMELESS_VALUE = ("__secure-", "__host-")

# Characters that would end the name early inside an expiring Set-Cookie.
_NAME_BREAKERS = frozenset(";=")
_EPOCH_EXPIRES = "Thu, 01 Jan 1970 00:00:00 GMT"
_GLOB_CHARACTERS = frozenset("*?[")
# Cookie names are few per site, but a client can send arbitrarily many distinct
# ones; the lookup cache is bounded so it cannot grow without limit.
_CATEGORY_CACHE_LIMIT = 4096

HeaderT = TypeVar("HeaderT", bytes, str)


def header_text(value: bytes | str) -> str:
    """Decode a raw header value the way browsers treat cookie octets.

    Browsers store cookie names as UTF-8 text; bytes that are not valid UTF-8 fall back
    to Latin-1 (the HTTP default) so that every byte still maps to one character.
    """
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _split_name_value_pair(set_cookie_string: str) -> tuple[str, str]:
    """Split the part before the first ``;`` into (name, value) per RFC 6265bis §5.6."""
    name_value_pair = set_cookie_string.split(";", 1)[0]
    if "=" not in name_value_pair:
        # 6265bis stores a cookie with an empty name; RFC 6265 browsers ignore it.
        return "", name_value_pair.strip(_WSP)
    name, value = name_value_pair.split("=", 1)
    return name.strip(_WSP), value.strip(_WSP)


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _browser_ignores(name: str, value: str) -> bool:
    """Whether an RFC 6265bis browser drops a parsed name/value pair entirely."""
    if not name and not value:
        return True
    if _utf8_length(name) + _utf8_length(value) > _MAX_NAME_VALUE_OCTETS:
        return True
    return not name and value.lower().startswith(_PREFIXES_FORBIDDEN_AS_NAMELESS_VALUE)


def cookie_name_from_set_cookie(header_value: str) -> str | None:
    """Return the cookie name a browser stores from one ``Set-Cookie`` value.

    Returns ``""`` for a nameless cookie (``Set-Cookie: foo``, ``=foo``): RFC 6265bis
    browsers store it with an empty name, older ones ignore it, so callers should treat
    the empty name as an unknown cookie. Returns ``None`` when a browser following
    RFC 6265bis stores nothing at all (control characters, empty name and value, an
    oversized pair, or a nameless value posing as a ``__Secure-``/``__Host-`` name).
    """
    if _FORBIDDEN_CONTROLS.search(header_value):
        return None
    name, value = _split_name_value_pair(header_value)
    if _browser_ignores(name, value):
        return None
    return name


def cookie_names_from_cookie_header(header: str) -> list[str]:
    """Return the cookie names of a request ``Cookie`` header, in order, duplicates kept.

    A browser sends a nameless cookie as its bare value, which is reported as ``""``.
    Empty entries (``a=1;;b=2``, trailing ``;``) are skipped.
    """
    names: list[str] = []
    for entry in header.split(";"):
        if not entry.strip(_WSP):
            continue
        name = entry.split("=", 1)[0] if "=" in entry else ""
        names.append(name.strip(_WSP))
    return names


@dataclass(frozen=True, slots=True)
class CookieRule:
    """One registry entry: which cookies (exact name or glob) belong to which category.

    ``path`` and ``domain`` are where the cookie is set, needed to expire it: a browser
    only overwrites a cookie whose name, path and domain all match.
    """

    pattern: str
    category: str
    path: str = "/"
    domain: str | None = None

    def __post_init__(self) -> None:
        if not self.pattern:
            raise ValueError("cookie rule pattern must not be empty")
        if not self.category:
            raise ValueError(f"cookie rule {self.pattern!r} needs a category")
        if not self.path.startswith("/"):
            raise ValueError(f"cookie rule {self.pattern!r}: path must start with '/'")
        # path and domain are copied into Set-Cookie headers; refusing separators and
        # control characters keeps a rule from injecting attributes or headers.
        for label, text in (("path", self.path), ("domain", self.domain or "")):
            if ";" in text or _FORBIDDEN_CONTROLS.search(text):
                raise ValueError(f"cookie rule {self.pattern!r}: invalid {label} {text!r}")
        if self.domain is not None and not self.domain.strip(_WSP + "."):
            raise ValueError(f"cookie rule {self.pattern!r}: empty domain")

    @property
    def is_glob(self) -> bool:
        return not _GLOB_CHARACTERS.isdisjoint(self.pattern)


@dataclass(frozen=True, slots=True)
class _CompiledGlob:
    rule: CookieRule
    regex: re.Pattern[str]


class CookieRegistry:
    """Maps cookie names to consent categories.

    Exact-name rules win over globs; among globs the first one (in the given order)
    that matches wins. Globs use :func:`fnmatch.fnmatchcase` semantics because cookie
    names are case-sensitive. Several exact rules may share one name (the same cookie
    set at several paths or domains) as long as they agree on its category.
    """

    def __init__(self, rules: Iterable[CookieRule]) -> None:
        self._rules = tuple(rules)
        self._exact: dict[str, tuple[CookieRule, ...]] = {}
        self._globs: list[_CompiledGlob] = []
        for rule in self._rules:
            if rule.is_glob:
                self._globs.append(_compile_glob(rule))
            else:
                self._add_exact(rule)
        self._glob_cache: dict[str, CookieRule | None] = {}

    def _add_exact(self, rule: CookieRule) -> None:
        same_name = self._exact.get(rule.pattern, ())
        if same_name and same_name[0].category != rule.category:
            raise ValueError(
                f"cookie {rule.pattern!r} is listed under both "
                f"{same_name[0].category!r} and {rule.category!r}"
            )
        self._exact[rule.pattern] = (*same_name, rule)

    @property
    def rules(self) -> tuple[CookieRule, ...]:
        return self._rules

    def category_of(self, name: str) -> str | None:
        """The consent category of a cookie name, or ``None`` when no rule covers it."""
        rules = self.rules_for(name)
        return rules[0].category if rules else None

    def rules_for(self, name: str) -> tuple[CookieRule, ...]:
        """The rules that decide a cookie name: all exact rules, else the first glob."""
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        glob_rule = self._first_matching_glob(name)
        return (glob_rule,) if glob_rule is not None else ()

    def _first_matching_glob(self, name: str) -> CookieRule | None:
        try:
            return self._glob_cache[name]
        except KeyError:
            pass
        found = next((g.rule for g in self._globs if g.regex.match(name)), None)
        if len(self._glob_cache) >= _CATEGORY_CACHE_LIMIT:
            self._glob_cache.clear()
        self._glob_cache[name] = found
        return found


def _compile_glob(rule: CookieRule) -> _CompiledGlob:
    return _CompiledGlob(rule=rule, regex=re.compile(fnmatch.translate(rule.pattern)))


@dataclass(frozen=True, slots=True)
class FilteredSetCookies(Generic[HeaderT]):
    """Outcome of :func:`filter_set_cookie_headers`.

    ``dropped_names`` lists the names of dropped cookies (``""`` for nameless ones);
    ``dropped_unparseable`` counts dropped headers a 6265bis browser would ignore anyway.
    """

    kept: list[HeaderT] = field(default_factory=list)
    dropped_names: list[str] = field(default_factory=list)
    dropped_unparseable: int = 0


def filter_set_cookie_headers(
    headers: Sequence[HeaderT], allowed: Callable[[str], bool]
) -> FilteredSetCookies[HeaderT]:
    """Keep a ``Set-Cookie`` value only if ``allowed`` accepts the name a browser sees.

    Values a 6265bis browser ignores are dropped too: older browsers salvage some of
    them (e.g. truncating at a NUL), and a header nobody honours loses nothing.
    """
    kept: list[HeaderT] = []
    dropped_names: list[str] = []
    unparseable = 0
    for header in headers:
        name = cookie_name_from_set_cookie(header_text(header))
        if name is None:
            unparseable += 1
        elif allowed(name):
            kept.append(header)
        else:
            dropped_names.append(name)
    return FilteredSetCookies(kept, dropped_names, unparseable)


def _has_prefix(name: str, prefix: str) -> bool:
    # 6265bis matches cookie prefixes case-insensitively.
    return name[: len(prefix)].lower() == prefix.lower()


def _expiry(name: str, path: str, domain: str | None) -> str:
    parts = [f"{name}=", "Max-Age=0", f"Expires={_EPOCH_EXPIRES}", f"Path={path}"]
    if domain is not None:
        parts.append(f"Domain={domain}")
    if _has_prefix(name, "__Secure-") or _has_prefix(name, "__Host-"):
        # Without Secure the browser rejects a prefixed cookie, expiry included.
        parts.append("Secure")
    if _has_prefix(name, "__Http-") or _has_prefix(name, "__Host-Http-"):
        # Newer 6265bis drafts also demand HttpOnly for these prefixes.
        parts.append("HttpOnly")
    return "; ".join(parts)


def _expiries_for_rule(name: str, rule: CookieRule) -> list[str]:
    if _has_prefix(name, "__Host-"):
        # A __Host- cookie only exists host-only at Path=/, whatever the rule says.
        return [_expiry(name, "/", None)]
    if rule.domain is None:
        return [_expiry(name, rule.path, None)]
    # The browser may hold the domain cookie or a host-only one of the same name.
    return [_expiry(name, rule.path, rule.domain), _expiry(name, rule.path, None)]


def _can_expire(name: str) -> bool:
    # A nameless cookie cannot be addressed by "=; Max-Age=0" (6265bis ignores an
    # empty name with an empty value), and a name with control characters would
    # make an invalid header.
    return (
        bool(name)
        and not _FORBIDDEN_CONTROLS.search(name)
        and not _NAME_BREAKERS.intersection(name)
    )


def expire_cookie_headers(
    names_in_request: Iterable[str],
    registry: CookieRegistry,
    denied_categories: AbstractSet[str],
) -> list[str]:
    """``Set-Cookie`` values that expire each request cookie of a denied category.

    HttpOnly cookies are expired the same way: a server ``Set-Cookie`` may overwrite
    them. Each name is handled once even if the request carries it several times.
    """
    headers: list[str] = []
    seen: set[str] = set()
    for name in names_in_request:
        if name in seen or not _can_expire(name):
            continue
        seen.add(name)
        rules = registry.rules_for(name)
        if not rules or rules[0].category not in denied_categories:
            continue
        for rule in rules:
            for header in _expiries_for_rule(name, rule):
                # Rules differing only in a part __Host- ignores yield the same header.
                if header not in headers:
                    headers.append(header)
    return headers
