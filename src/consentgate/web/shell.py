"""Our reader pages in the site's own look: the page shell (``[pages] layout_path``).

The site serves, at ``layout_path``, a normal page of its own (masthead, navigation,
footer) with one element marked ``data-consentgate-content``. :class:`PageShell` fetches
it in-process, through the site's ASGI app (a synthetic anonymous GET: no cookies, no
credentials, only the language we chose for the reader), keeps it per language for
``layout_cache_seconds``, and sets each page of ours into it: the marked element's content
is replaced by our page's content, our <title> replaces the site's, our stylesheets join
its <head>.

What we take from the site is made harmless once, when it is fetched: every <script>
(the site's trackers never run on our pages), <noscript>, frames, plugins, <base> (it
would move our forms' targets) and ``<meta http-equiv>`` are removed, with the
project's own streaming rewriter. Our pages keep their CSP, which allows the site's own
('self') stylesheets, images and fonts and nothing else.

Anything wrong with the layout (no app, a fetch that fails, is slow, too big, not a 200
``text/html``, or has no usable marker) gives our clean default page, never a failed
page, with one WARNING per burst of failures.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from html import unescape
from typing import TYPE_CHECKING, Any

from consentgate.markup import escape as _e
from consentgate.rewrite import (
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    RewriteError,
    Rewriter,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Scope

    from consentgate.config import PagesSettings

__all__ = ["MARKER", "MAX_LAYOUT_BYTES", "Layout", "PageShell", "split_document"]

logger = logging.getLogger("consentgate")

#: The attribute that marks, in the layout, the element our content goes into.
MARKER = "data-consentgate-content"
#: A layout larger than this is not a page shell.
MAX_LAYOUT_BYTES = 512 * 1024
# Elements our content may go into: ones that hold any flow content (a <p> or <span>
# would be closed by our first heading or form, by the HTML parser, in every browser).
_CONTAINERS = frozenset({"main", "div", "section", "article"})
# What never survives from the layout: scripts (and what stands in for them), frames,
# plugins, a <base> that would move our relative links and forms, refreshes and policies,
# and the resource hints.
_REMOVED = (
    "script",
    "noscript",
    "iframe",
    "object",
    "embed",
    "base",
    "meta[http-equiv]",
    "title",
    # Hints that open connections or fetch ahead, which the CSP does not reliably stop:
    # a tracker's preconnect is a request to it.
    *(
        f"link[rel~={rel}]"
        for rel in ("preconnect", "dns-prefetch", "prefetch", "preload", "modulepreload")
    ),
    "link[rel~=prerender]",
)
# A failure is tried again after this long at most, whatever layout_cache_seconds says.
_RETRY_FAILED_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Layout:
    """A fetched layout, cut around the places our page fills in."""

    #: Up to <title>; between </title> and our head extras; up to the marker's content;
    #: from the marker's end tag to the end.
    before_title: str
    before_head: str
    before_content: str
    after_content: str

    def wrap(self, lang: str, title: str, head: str, content: str) -> str:
        """Our page in the layout; ``title`` is plain text, ``head`` and ``content`` HTML."""
        return (
            self.before_title
            + _e(title)
            + self.before_head
            + head
            + self.before_content
            + f'<div class="cg-main cg-shell" lang="{_e(lang)}">{content}</div>'
            + self.after_content
        )


@dataclass(frozen=True, slots=True)
class _Document:
    title: str
    head: str
    content: str


def split_document(document: str) -> _Document | None:
    """The title, head extras and main content of a complete page of ours.

    Every reader page of ours is written by web/templates.py or web/account_templates.py
    as ``…<title>T</title>HEAD</head><body class="cg-page"><main class="cg-main">
    CONTENT</main></body></html>`` with every value escaped, so the first ``</title>``
    and the last ``</main>`` are ours. A page of another shape is left as it is (None).
    """
    start = document.find("<title>")
    title_end = document.find("</title>", start)
    head_end = document.find("</head>", title_end)
    main_open = '<main class="cg-main">'
    main_start = document.find(main_open, head_end)
    main_end = document.rfind("</main>")
    if min(start, title_end, head_end, main_start) < 0 or main_end < main_start:
        return None
    return _Document(
        title=unescape(document[start + len("<title>") : title_end]),
        head=document[title_end + len("</title>") : head_end],
        content=document[main_start + len(main_open) : main_end],
    )


class _LayoutProblem(Exception):
    """Why a fetched layout cannot be used (said once in the log)."""


class _TooLarge(Exception):
    pass


@dataclass(slots=True)
class _Entry:
    layout: Layout | None
    expires: float


class PageShell:
    """The site's layout, fetched per language and kept for a while; see the module."""

    def __init__(
        self,
        settings: PagesSettings,
        app: ASGIApp | None,
        *,
        max_bytes: int = MAX_LAYOUT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.app = app
        self.max_bytes = max_bytes
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Set between a failure's WARNING and the next success: one line per burst.
        self._failing = False
        #: How many times the layout was requested from the app (for the tests, metrics).
        self.fetches = 0
        token = secrets.token_hex(12)
        # Stand-ins the rewriter carries through untouched; random, so no layout has them.
        self._title = f"cg-shell-title-{token}"
        self._head = f"cg-shell-head-{token}"
        self._early_head = f"cg-shell-early-head-{token}"
        self._open = f"cg-shell-open-{token}"
        self._close = f"cg-shell-close-{token}"

    @property
    def enabled(self) -> bool:
        return bool(self.settings.layout_path) and self.app is not None

    def cached(self, language: str) -> Layout | None:
        """The layout for ``language`` if one is at hand (no fetch, even if stale)."""
        entry = self._cache.get(language)
        return entry.layout if entry is not None else None

    async def layout(self, language: str, scope: Scope | None = None) -> Layout | None:
        """The layout for ``language``, fetched when it is missing or expired; None for
        the default page. Never raises: a broken layout must not break our pages."""
        if not self.enabled:
            return None
        entry = self._cache.get(language)
        now = self._clock()
        if entry is not None and entry.expires > now:
            return entry.layout
        lock = self._locks.setdefault(language, asyncio.Lock())
        async with lock:
            # Readers who waited on the lock find what the first one fetched.
            entry = self._cache.get(language)
            now = self._clock()
            if entry is not None and entry.expires > now:
                return entry.layout
            layout = await self._fetch(language, scope)
            ttl = float(self.settings.layout_cache_seconds)
            if layout is None:
                ttl = min(ttl, _RETRY_FAILED_SECONDS)
            self._cache[language] = _Entry(layout, self._clock() + ttl)
            return layout

    async def _fetch(self, language: str, scope: Scope | None) -> Layout | None:
        self.fetches += 1
        path = self.settings.layout_path
        try:
            async with asyncio.timeout(self.settings.layout_timeout_seconds):
                status, content_type, encoding, body = await self._get(language, scope)
            layout = self._parse(status, content_type, encoding, body)
        except TimeoutError:
            self._warn(f"no answer within {self.settings.layout_timeout_seconds} s")
            return None
        except _TooLarge:
            self._warn(f"larger than {self.max_bytes} bytes")
            return None
        except _LayoutProblem as problem:
            self._warn(str(problem))
            return None
        except Exception as exc:  # the site's app failing must not fail our pages
            self._warn(f"the app raised {type(exc).__name__}: {exc}")
            return None
        if self._failing:
            logger.info("consentgate: the page layout at %s works again", path)
            self._failing = False
        return layout

    def _warn(self, problem: str) -> None:
        if not self._failing:
            logger.warning(
                "consentgate: [pages] layout_path %s is not used, our default pages are "
                "shown instead: %s",
                self.settings.layout_path,
                problem,
            )
        self._failing = True

    def _request_scope(self, language: str, scope: Scope | None) -> dict[str, Any]:
        server = scope.get("server") if scope is not None else None
        host = self.settings.layout_host
        if not host:
            host = f"{server[0]}:{server[1]}" if server and server[1] else "localhost"
        path = self.settings.layout_path
        synthetic: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": scope.get("scheme", "http") if scope is not None else "http",
            "path": path,
            "raw_path": path.encode("ascii"),
            "query_string": b"",
            "root_path": scope.get("root_path", "") if scope is not None else "",
            # Anonymous: no cookie, no authorization, nothing of the reader but the
            # language we chose (one of ours), so one fetched layout fits every reader.
            "headers": [
                (b"host", host.encode("ascii")),
                (b"accept", b"text/html"),
                (b"accept-language", language.encode("ascii")),
                (b"user-agent", b"consentgate-page-shell"),
            ],
            "client": None,
            "server": server,
            # Empty, not a copy of the reader's: middleware around us (an auth layer) and
            # we ourselves keep per-reader things there, which must not reach a layout
            # every reader shares.
            "state": {},
        }
        return synthetic

    async def _get(self, language: str, scope: Scope | None) -> tuple[int, str, str, bytes]:
        app = self.app
        if app is None:  # enabled() says there is one; a caller that did not ask is wrong
            raise RuntimeError("the page shell has no app to fetch its layout from")
        done = asyncio.Event()
        requested = False
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        size = 0

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    headers[bytes(name).decode("latin-1").lower()] = bytes(value).decode("latin-1")
            elif message["type"] == "http.response.body":
                chunk = bytes(message.get("body", b""))
                size += len(chunk)
                if size > self.max_bytes:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    done.set()

        try:
            await app(self._request_scope(language, scope), receive, send)
        finally:
            done.set()
        if size > self.max_bytes:  # raised in send, but an app may have swallowed it
            raise _TooLarge
        encoding = headers.get("content-encoding", "identity").strip().lower()
        return status, headers.get("content-type", ""), encoding, b"".join(chunks)

    def _parse(self, status: int, content_type: str, encoding: str, body: bytes) -> Layout:
        if status != 200:
            raise _LayoutProblem(f"the app answered {status}, not 200")
        if content_type.partition(";")[0].strip().lower() != "text/html":
            raise _LayoutProblem(f"not text/html but {content_type or 'no content type'!r}")
        if encoding not in ("", "identity"):
            raise _LayoutProblem(f"encoded ({encoding}); serve it uncompressed")
        marked: list[str] = []

        def note(name: str, attrs: dict[str, str]) -> None:
            marked.append(name)

        operations: list[Operation] = [
            *(RemoveElement(target) for target in _REMOVED),
            # Our stylesheets go last in the head, after the site's (ours win where both
            # style our forms); right after <head> only when the head's end is implied.
            InsertHTML.after_head_open(f"<title>{self._title}</title>{self._early_head}"),
            InsertHTML("head", self._head, Position.BEFORE_END),
            RewriteAttributes(f"[{MARKER}]", lambda name, attrs: note(name, attrs)),
            InsertHTML(f"[{MARKER}]", self._open, Position.AFTER_START),
            InsertHTML(f"[{MARKER}]", self._close, Position.BEFORE_END),
        ]
        rewriter = Rewriter(operations, content_type=content_type)
        try:
            output = rewriter.rewrite(body)
        except RewriteError as exc:
            raise _LayoutProblem(f"could not be read as HTML ({exc})") from None
        if not marked:
            raise _LayoutProblem(f"it has no element with the {MARKER} attribute")
        if len(marked) > 1:
            raise _LayoutProblem(f"it has {len(marked)} elements with the {MARKER} attribute")
        if marked[0] not in _CONTAINERS:
            raise _LayoutProblem(
                f"the {MARKER} element is a <{marked[0]}>; use one of "
                + ", ".join(f"<{name}>" for name in sorted(_CONTAINERS))
            )
        charset = rewriter.charset
        text = output.decode(charset.encoding if charset else "utf-8", errors="replace")
        return self._cut(text)

    def _cut(self, text: str) -> Layout:
        if text.count(self._head) == 1:
            text = text.replace(self._early_head, "", 1)
        else:
            text = text.replace(self._head, "").replace(self._early_head, self._head, 1)
        marks = (self._title, self._head, self._open, self._close)
        places = [text.find(mark) for mark in marks]
        if any(text.count(mark) != 1 for mark in marks) or places != sorted(places):
            # The marker's end tag was implied (never written), or the marker sits where
            # the head's insertion cannot come before it.
            raise _LayoutProblem(f"the {MARKER} element must be closed by its own end tag")
        title, head, opened, closed = places
        return Layout(
            before_title=text[:title],
            before_head=text[title + len(self._title) : head],
            before_content=text[head + len(self._head) : opened],
            after_content=text[closed + len(self._close) :],
        )
