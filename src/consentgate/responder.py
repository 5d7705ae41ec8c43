"""The per-request wrapper around the app's ``send``: headers held, cookies enforced,
HTML rewritten as it streams.

``http.response.start`` is held until the first body message, because only then do
we know enough to fix the headers (Content-Length of a rewritten body, Set-Cookie,
Vary, Cache-Control). From then on each body chunk goes through the rewriter and out
at once: nothing waits for the whole page.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope, Send

from consentgate.consent.cookies import expire_cookie_headers, filter_set_cookie_headers
from consentgate.pipeline import consent_rewriter
from consentgate.rewrite import RewriteError, Rewriter, is_rewritable

if TYPE_CHECKING:
    from consentgate.middleware import ConsentGate
    from consentgate.visitor import Visitor

logger = logging.getLogger("consentgate")

_NO_BODY_STATUSES = frozenset({204, 304})


class Responder:
    def __init__(self, gate: ConsentGate, scope: Scope, visitor: Visitor, send: Send) -> None:
        self.gate = gate
        self.scope = scope
        self.visitor = visitor
        self._send = send
        self.extra_cookies: list[str] = []
        self._start: Message | None = None
        self._began = False
        self._rewriter: Rewriter | None = None
        self._replay: list[bytes] | None = []
        self._broken = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start = message
            return
        if not self._began:
            self._began = True
            await self._begin(message)
            return
        if self._broken:
            return  # the body was ended early (see _feed); the app's rest is dropped
        if kind == "http.response.body" and self._rewriter is not None:
            await self._send_rewritten(message)
            return
        await self._send(message)

    # -- the first body message decides the headers ---------------------------------
    async def _begin(self, first: Message) -> None:
        start = self._start
        if start is None:  # a body before the start: not ours to fix
            await self._send(first)
            return
        headers = MutableHeaders(raw=list(start["headers"]))
        status = int(start["status"])
        if first["type"] == "http.response.body" and self._should_rewrite(headers, status):
            try:
                self._rewriter, cookies = consent_rewriter(self.gate, self.visitor, headers)
            except RewriteError as exc:  # e.g. a declared UTF-16 page: leave it as it is
                self._log_not_rewritten(exc)
            else:
                self.extra_cookies.extend(cookies)
        cookies_changed = self._enforce_cookies(headers)
        if self._rewriter is not None:
            self._mark_visitor_dependent(headers)
            await self._begin_rewritten(start, headers, first)
            return
        if cookies_changed:
            headers.add_vary_header("Cookie")
        await self._send({**start, "headers": headers.raw})
        await self._send(first)

    async def _begin_rewritten(
        self, start: Message, headers: MutableHeaders, first: Message
    ) -> None:
        if self.scope["method"] == "HEAD":
            # A HEAD answer must not announce a length the GET answer will not have.
            del headers["content-length"]
            self._rewriter = None
            await self._send({**start, "headers": headers.raw})
            await self._send(first)
            return
        if not first.get("more_body", False):
            # The whole page in one message: rewrite it and send an exact length.
            body = self._rewrite_all(first.get("body", b""))
            headers["content-length"] = str(len(body))
            self._rewriter = None
            await self._send({**start, "headers": headers.raw})
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return
        # Streaming: the final length is unknown, so the server will chunk the body.
        del headers["content-length"]
        await self._send({**start, "headers": headers.raw})
        await self._send_rewritten(first)

    async def _send_rewritten(self, message: Message) -> None:
        rewriter = self._rewriter
        if rewriter is None:
            await self._send(message)
            return
        chunk: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        output = self._feed(rewriter, chunk, final=not more)
        if self._broken:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if output or not more:
            await self._send({"type": "http.response.body", "body": output, "more_body": more})

    def _rewrite_all(self, body: bytes) -> bytes:
        rewriter = self._rewriter
        if rewriter is None:
            return body
        return self._feed(rewriter, body, final=True)

    def _feed(self, rewriter: Rewriter, chunk: bytes, *, final: bool) -> bytes:
        """Consent rewriting is best effort: the page still works if it fails.

        Scripts stay inert when the rewriter cannot run, which is the safe side. Until
        the rewriter has produced output (it holds the first KiB to find the charset),
        we keep a copy of the input, so a page it refuses passes through intact.
        """
        if self._replay is not None:
            self._replay.append(chunk)
        try:
            output = rewriter.feed(chunk)
            if final:
                output += rewriter.close()
        except RewriteError as exc:
            self._log_not_rewritten(exc)
            self._rewriter = None
            if self._replay is not None:
                return b"".join(self._replay)
            # Past the first output, the bytes the rewriter held are lost with it: a tag
            # over max_token_bytes (16 MiB here). Ending the body beats corrupting it.
            self._broken = True
            return b""
        if output:
            self._replay = None
        return output

    def _log_not_rewritten(self, exc: RewriteError) -> None:
        logger.warning(
            "consentgate: HTML of %s not rewritten (%s); passed through as it was",
            self.scope.get("path"),
            exc,
        )

    # -- decisions ------------------------------------------------------------------
    def _should_rewrite(self, headers: MutableHeaders, status: int) -> bool:
        if status in _NO_BODY_STATUSES or status < 200:
            return False
        return is_rewritable(headers.get("content-type"), headers.get("content-encoding"))

    def _enforce_cookies(self, headers: MutableHeaders) -> bool:
        """Drop Set-Cookie the reader did not allow; expire cookies of denied categories."""
        original = headers.getlist("set-cookie")
        filtered = filter_set_cookie_headers(original, self._cookie_allowed)
        expiries = expire_cookie_headers(
            self.visitor.cookies, self.gate.registry, self.visitor.consent.denied
        )
        additions = self.extra_cookies + expiries
        if not filtered.dropped_names and not filtered.dropped_unparseable and not additions:
            return bool(original)
        del headers["set-cookie"]
        for value in [*filtered.kept, *additions]:
            headers.append("set-cookie", value)
        return True

    def _cookie_allowed(self, name: str) -> bool:
        category = self.gate.registry.category_of(name)
        if category is None:
            if self.gate.config.blocks_unknown_cookies(self.visitor.mode):
                self.gate.log_unknown_cookie_once(name)
                return False
            return True
        return self.visitor.consent.allows(category)

    def _mark_visitor_dependent(self, headers: MutableHeaders) -> None:
        """The page now differs per reader: no shared cache may store or reuse it."""
        headers.add_vary_header("Cookie")
        directives = [
            d.strip()
            for d in headers.get("cache-control", "").split(",")
            if d.strip()
            and d.strip().lower().split("=")[0] not in ("public", "s-maxage", "private")
        ]
        headers["cache-control"] = ", ".join(["private", *directives])
        # Validators of the app's version would let a cache confuse the two versions.
        del headers["etag"]
