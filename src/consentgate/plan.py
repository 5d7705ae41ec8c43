"""What to do with one response, decided before its body is touched: the response plan.

The planner (``planner.py``, which knows consent and the wall) turns a visitor and the
app's response head into a :class:`ResponsePlan`; the responder (``responder.py``, which
knows ASGI and the rewriter) carries it out. This module is the vocabulary both share,
so it knows neither: plain values, and :func:`apply_headers`, the one place where a
plan's headers — cookies, caching, ``Vary`` — are written on a response.
"""

from __future__ import annotations

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


def apply_headers(headers: MutableHeaders, plan: ResponsePlan, *, rewritten: bool) -> None:
    """Write the plan's cookies and caching on ``headers`` (the app's, or our fallback's).

    ``rewritten``: the body that goes out is ours, so it differs per reader even when the
    plan would otherwise leave caching to the app.
    """
    for name in plan.drop_headers:
        del headers[name]
    original = headers.getlist("set-cookie")
    kept, dropped = plan.filter_cookies(original)
    additions = [*plan.set_cookies, *plan.expire_cookies]
    if dropped or additions:
        del headers["set-cookie"]
        for value in [*kept, *additions]:
            headers.append("set-cookie", value)
    cache = plan.cache
    if cache is Cache.CLASS and (not rewritten or additions or original):
        # Not our rewritten page, or a cookie on it after all: nothing to share.
        cache = Cache.READER if rewritten else Cache.APP
    elif rewritten and cache is Cache.APP:
        cache = Cache.READER
    if cache is Cache.APP:
        if original or additions:
            # The cookies the reader sent decide which Set-Cookie headers pass.
            _vary(headers, "Cookie")
        return
    if cache is Cache.CLASS:
        # Vary: Cookie for every cache that knows nothing of classes (a browser's own, a
        # CDN without our configuration): correct, just not shared. A cache that keys on
        # the class cookie may share the page per class; the header says which it is.
        _vary(headers, "Cookie", "Sec-Fetch-Dest", *plan.class_vary)
        headers[CLASS_HEADER] = plan.consent_class or ""
        for validator in ("etag", "last-modified", "accept-ranges"):
            del headers[validator]
        return
    # A page for this reader depends on their cookies and on whether it was asked for a
    # frame (no banner there): a browser's own cache must not reuse one for the other.
    _vary(headers, "Cookie", "Sec-Fetch-Dest")
    # Validators of the app's version would let a cache confuse the two versions.
    del headers["etag"]
    if cache is not Cache.READER:
        del headers["last-modified"]
        del headers["accept-ranges"]
    if cache is Cache.NO_STORE:
        headers["cache-control"] = "private, no-store"
        return
    directives = [
        d.strip()
        for d in headers.get("cache-control", "").split(",")
        if d.strip() and d.strip().lower().split("=")[0] not in ("public", "s-maxage", "private")
    ]
    headers["cache-control"] = ", ".join(["private", *directives])


def content_encoding(headers: MutableHeaders) -> str | None:
    """Every ``Content-Encoding`` line as one list (RFC 9110 §5.3), in order."""
    values = headers.getlist("content-encoding")
    return ", ".join(values) if values else None


def reason_of(exc: BaseException) -> str:
    """A log's reason: a rewriter error names its reason; anything else its type too."""
    if isinstance(exc, RewriteError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _vary(headers: MutableHeaders, *added: str) -> None:
    """Add names to ``Vary`` once, keeping what the app listed (in one header line; names
    compare case-insensitively, ``*`` covers all). Starlette's ``add_vary_header`` appends
    every time: marking a response in several steps sent ``Vary: Cookie, Cookie, Cookie``."""
    names: list[str] = []
    for line in [*headers.getlist("vary"), ", ".join(added)]:
        for name in line.split(","):
            name = name.strip()
            if name and name.lower() not in (n.lower() for n in names):
                names.append(name)
    if "*" in names:
        names = ["*"]
    del headers["vary"]
    headers["vary"] = ", ".join(names)
