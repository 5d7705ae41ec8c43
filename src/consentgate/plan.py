"""What to do with one response, decided before its body is touched: the response plan.

The planner (``planner.py``, which knows consent and the wall) turns a visitor and the
app's response head into a :class:`ResponsePlan`; the responder (``responder.py``, which
knows ASGI and the rewriter) carries it out. This module is the vocabulary both share,
so it knows neither: plain values, and :func:`apply_headers`, the one place where a
plan's headers — cookies, caching, ``Vary`` — are written on a response.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from starlette.datastructures import MutableHeaders

from consentgate.rewrite import Operation, RewriteError


class Mode(Enum):
    #: Not rewritten: the app's bytes go out as they came, cookies enforced.
    PASS = "pass"  # noqa: S105 (a mode, not a password)
    #: Rewritten as it streams; if the rewriter gives up, the page passes as it was
    #: (nothing sent yet) or its body ends there. Every page the reader may read.
    BEST_EFFORT = "best effort"
    #: An article the reader may not read in full: nothing of it goes out before its cut
    #: is decided, and any failure sends the fallback page (or ends the body).
    FAIL_CLOSED = "fail closed"


class Cache(Enum):
    """How shared and browser caches may keep the response, from loosest to strictest."""

    #: The app's own caching stands (``Vary: Cookie`` when the reader's cookies decided
    #: which of its Set-Cookie headers passed).
    APP = "app"
    #: Rewritten, but the same bytes for every reader of the plan's consent class: the
    #: app's (public) caching stands, the class is named in a header, validators go.
    CLASS = "class"
    #: The page differs per reader: private, no validators, ``Vary`` on what decided it.
    READER = "reader"
    #: A metered or registered article read in full: as READER, and no
    #: ``Last-Modified``/``Accept-Ranges`` (a range of the full text must not come later).
    ARTICLE = "article"
    #: A cut article or the fallback page: never stored anywhere.
    NO_STORE = "no-store"


#: The response header naming a shareable response's consent class (see Cache.CLASS).
CLASS_HEADER = "consentgate-class"

# (the app's Set-Cookie values) -> (those the reader allowed, whether any was dropped)
CookieFilter = Callable[[Sequence[str]], tuple[list[str], bool]]


def _keep_all(values: Sequence[str]) -> tuple[list[str], bool]:
    return list(values), False


@dataclass(frozen=True, slots=True)
class Fallback:
    """The page sent instead of a response that cannot be delivered safely."""

    render: Callable[[], bytes]
    headers: Mapping[str, str]


@dataclass(slots=True)
class ResponsePlan:
    mode: Mode = Mode.PASS
    cache: Cache = Cache.APP
    #: The rewriter's operations (consent's and the wall's, run in one pass).
    operations: Sequence[Operation] = ()
    max_token_bytes: int = 1 << 20
    #: Set-Cookie values we add (a consent, CSRF or meter cookie) and those that expire
    #: cookies of refused categories.
    set_cookies: list[str] = field(default_factory=list)
    expire_cookies: Sequence[str] = ()
    filter_cookies: CookieFilter = _keep_all
    #: The app's headers meant for us alone, never sent on.
    drop_headers: Sequence[str] = ()
    #: FAIL_CLOSED only: why the body cannot be cut at all (send the fallback at once).
    refuse: str | None = None
    fallback: Fallback | None = None
    #: Cache.CLASS only: the class, and the request headers beside ``Cookie`` the page
    #: depends on (a shared cache keys on the class and varies on these).
    consent_class: str | None = None
    class_vary: Sequence[str] = ()
    #: The app's Content-Type and (every line of) Content-Encoding, as the planner read
    #: them: the responder's rewriter needs them too.
    content_type: str | None = None
    content_encoding: str | None = None


class PlanFor(Protocol):
    """One request's planner, bound to its visitor: what the responder asks."""

    def untouched(self, raw_headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """True when the plan could only be "pass, change nothing": no Set-Cookie to
        filter, add or expire, nothing to rewrite, no article. Decided from the app's
        raw header list, so most responses of a site (JSON, images, CSS) cost a scan,
        not a plan. False whenever in doubt; the full plan then decides."""

    async def __call__(self, headers: MutableHeaders, status: int, first_kind: str) -> ResponsePlan:
        """The plan for a response with these (lower-cased) headers and status.

        ``first_kind``: the type of the app's first message after the start (a body,
        or, say, a zero-copy send we could not rewrite)."""


class ResponseHead:
    """The app's response head read in one pass: what planning and rewriting ask of it.

    Each ``MutableHeaders.get`` walks the whole list (and encodes the name); a plan asks
    a dozen questions of one head, so the answers are read once here. Names must be
    lower-case already (the responder lower-cases them); the values are Latin-1 text,
    as Starlette decodes them.
    """

    __slots__ = ("_first", "content_encoding", "has_set_cookie")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        first: dict[bytes, bytes] = {}
        encodings: list[str] = []
        for name, value in raw:
            if name not in first:
                first[name] = value
            elif name == b"content-encoding":
                encodings.append(value.decode("latin-1"))
        self._first = first
        coding = first.get(b"content-encoding")
        #: Every ``Content-Encoding`` line as one list (RFC 9110 §5.3), in order.
        self.content_encoding = (
            None if coding is None else ", ".join([coding.decode("latin-1"), *encodings])
        )
        self.has_set_cookie = b"set-cookie" in first

    def has_any(self, names: frozenset[bytes]) -> bool:
        """Whether any of these (lower-case) names is in the head."""
        return not names.isdisjoint(self._first)

    def get(self, name: bytes) -> str | None:
        """The first value of ``name`` (lower-case), as ``Headers.get`` gives it."""
        value = self._first.get(name)
        return None if value is None else value.decode("latin-1")


def apply_headers(
    headers: MutableHeaders,
    plan: ResponsePlan,
    *,
    rewritten: bool,
    content_length: int | None = None,
) -> None:
    """Write the plan's cookies and caching on ``headers`` (the app's, or our fallback's).

    ``rewritten``: the body that goes out is ours, so it differs per reader even when the
    plan would otherwise leave caching to the app. ``content_length``: the length of the
    body that goes out, when it is known now (set last, as ``headers[...] =`` would).

    One pass reads the lines it needs and one builds the new list: the same result as
    deleting and setting names one by one on ``headers``, which scans the list each time
    (replaced values keep their place, added ones go at the end, in the order below).
    """
    raw = headers.raw  # the list itself: it is rebuilt in place
    drop = _names(tuple(plan.drop_headers))
    original: list[str] = []
    vary_lines: list[str] = []
    cache_control: bytes | None = None
    for name, value in raw:
        if name in drop:
            continue
        if name == b"set-cookie":
            original.append(value.decode("latin-1"))
        elif name == b"vary":
            vary_lines.append(value.decode("latin-1"))
        elif name == b"cache-control" and cache_control is None:
            cache_control = value
    kept, dropped = plan.filter_cookies(original) if original else ([], False)
    additions = [*plan.set_cookies, *plan.expire_cookies]
    cookies: list[str] | None = [*kept, *additions] if dropped or additions else None
    cache = plan.cache
    if cache is Cache.CLASS and (not rewritten or additions or original):
        # Not our rewritten page, or a cookie on it after all: nothing to share.
        cache = Cache.READER if rewritten else Cache.APP
    elif rewritten and cache is Cache.APP:
        cache = Cache.READER
    vary: tuple[str, ...] = ()
    removed: frozenset[bytes] = frozenset()
    replaced: dict[bytes, bytes] = {}
    if cache is Cache.APP:
        if original or additions:
            # The cookies the reader sent decide which Set-Cookie headers pass.
            vary = _VARY_APP
    elif cache is Cache.CLASS:
        # Vary: Cookie for every cache that knows nothing of classes (a browser's own, a
        # CDN without our configuration): correct, just not shared. A cache that keys on
        # the class cookie may share the page per class; the header says which it is.
        vary = (*_VARY_READER, *plan.class_vary)
        replaced[_CLASS_HEADER] = (plan.consent_class or "").encode("latin-1")
        removed = _VALIDATORS
    else:
        # A page for this reader depends on their cookies and on whether it was asked for
        # a frame (no banner there): a browser's own cache must not reuse one for the other.
        vary = _VARY_READER
        # Validators of the app's version would let a cache confuse the two versions.
        removed = _ETAG if cache is Cache.READER else _VALIDATORS
        if cache is Cache.NO_STORE:
            replaced[b"cache-control"] = b"private, no-store"
        else:
            replaced[b"cache-control"] = _private(cache_control or b"")
    if content_length is not None:
        replaced[b"content-length"] = str(content_length).encode("latin-1")
    if not drop and cookies is None and not vary and not removed and not replaced:
        return  # nothing of the app's head changes
    skip = _skipped(drop, removed, bool(vary), cookies is not None)
    out: list[tuple[bytes, bytes]] = []
    placed: set[bytes] = set()
    for line in raw:
        name = line[0]
        if name in skip:
            continue
        if name in replaced:
            if name in placed:
                continue  # a second line of a replaced name goes, as __setitem__ does
            placed.add(name)
            out.append((name, replaced[name]))
            continue
        out.append(line)
    if cookies is not None:
        out.extend((b"set-cookie", value.encode("latin-1")) for value in cookies)
    if vary:
        out.append((b"vary", _vary_value(tuple(vary_lines), vary)))
    for name in _APPENDED_ORDER:
        if name in replaced and name not in placed:
            out.append((name, replaced[name]))
    raw[:] = out


_VARY = frozenset({b"vary"})
_VARY_APP = ("Cookie",)
_VARY_READER = ("Cookie", "Sec-Fetch-Dest")
_CLASS_HEADER = CLASS_HEADER.encode("latin-1")
_ETAG = frozenset({b"etag"})
_VALIDATORS = frozenset({b"etag", b"last-modified", b"accept-ranges"})
# Names set when the app sent none go at the end in this order (as set one by one).
_APPENDED_ORDER = (_CLASS_HEADER, b"cache-control", b"content-length")


@functools.lru_cache(maxsize=256)
def _skipped(
    drop: frozenset[bytes], removed: frozenset[bytes], vary: bool, cookies: bool
) -> frozenset[bytes]:
    """The app's lines that do not go out as they are (a few combinations, kept)."""
    return (
        drop
        | removed
        | (_VARY if vary else frozenset())
        | (_SET_COOKIE if cookies else frozenset())
    )


_SET_COOKIE = frozenset({b"set-cookie"})


@functools.lru_cache(maxsize=64)
def _names(names: tuple[str, ...]) -> frozenset[bytes]:
    """Header names as they are compared on the wire; plans drop the same few."""
    return frozenset(name.lower().encode("latin-1") for name in names)


@functools.lru_cache(maxsize=512)
def _private(cache_control: bytes) -> bytes:
    """The app's Cache-Control made private: a site sends a handful of distinct values."""
    directives = [
        d.strip()
        for d in cache_control.decode("latin-1").split(",")
        if d.strip() and d.strip().lower().split("=")[0] not in ("public", "s-maxage", "private")
    ]
    return ", ".join(["private", *directives]).encode("latin-1")


def reason_of(exc: BaseException) -> str:
    """A log's reason: a rewriter error names its reason; anything else its type too."""
    if isinstance(exc, RewriteError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=512)
def _vary_value(lines: tuple[str, ...], added: tuple[str, ...]) -> bytes:
    """Add names to ``Vary`` once, keeping what the app listed (in one header line; names
    compare case-insensitively, ``*`` covers all). Starlette's ``add_vary_header`` appends
    every time: marking a response in several steps sent ``Vary: Cookie, Cookie, Cookie``.
    Kept per (the app's lines, ours): a site sends a handful of distinct ones."""
    names: list[str] = []
    for line in [*lines, ", ".join(added)]:
        for name in line.split(","):
            name = name.strip()
            if name and name.lower() not in (n.lower() for n in names):
                names.append(name)
    if "*" in names:
        names = ["*"]
    return ", ".join(names).encode("latin-1")
