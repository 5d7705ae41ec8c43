"""The per-request wrapper around the app's ``send``: headers held, cookies enforced,
HTML rewritten as it streams, articles cut for walled readers.

``http.response.start`` is held until the first body message, because only then do
we know enough to fix the headers (Content-Length of a rewritten body, Set-Cookie,
Vary, Cache-Control). Two regimes follow:

* **best effort** (every page the reader may read in full): each chunk goes through
  the rewriter and out at once. If the rewriter gives up (UTF-16, a monstrous tag),
  the page passes through as it was when nothing has been sent yet, else its body
  ends there; consent-gated scripts then simply stay inert.
* **fail closed** (an article the reader may not read in full): output is held until
  the rewriter is *settled* (the cut is done or the container has ended), so that
  nothing of the container goes out before its cut is decided and a page we cannot
  cut never streams out uncut. From then on it streams, still failing closed. Any
  failure whatsoever (a rewriter error of any reason, a limit, a charset or
  decompression error, an exception from a callback or from code nobody foresaw)
  sends the wall page when nothing was sent, or ends the body right there when the
  cut lead already went out. Each is logged at ERROR, saying which and why. A
  walled page is never "passed through as it was".
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope, Send

from consentgate.plan import (
    Mode,
    PlanFor,
    ResponsePlan,
    apply_headers,
    reason_of,
)
from consentgate.rewrite import RewriteMemo, Rewriter, StreamingDecoder

logger = logging.getLogger("consentgate")

# A walled page is held until its cut is decided; past this, we give up (wall page).
MAX_HELD_BYTES = 8 << 20
# ASGI messages after the body that carry no body bytes; anything else on a walled
# page (a pathsend, a zero-copy send) is a body we cannot cut.
_HARMLESS_AFTER_START = frozenset({"http.response.trailers"})


# The plan of a response not planned (yet): PASS. Shared, since the responder only ever
# reads a plan; a planned response gets its own from the planner.
_NO_PLAN = ResponsePlan()


class _Failed(Exception):
    """The walled body cannot be delivered safely; the message says why (for the log)."""


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Failed) else reason_of(exc)


class Responder:
    """Carries out one response's plan; knows ASGI and the rewriter, not why."""

    # One per response: slots make it cheaper to build and to read.
    __slots__ = (
        "_began",
        "_decoder",
        "_ended",
        "_gated",
        "_headers",
        "_held",
        "_held_size",
        "_memo",
        "_plan",
        "_plan_for",
        "_replay",
        "_rewriter",
        "_send",
        "_short_logged",
        "_start",
        "scope",
    )

    def __init__(
        self, plan_for: PlanFor, scope: Scope, send: Send, memo: RewriteMemo | None = None
    ) -> None:
        # What a response passed through as it is reads (most responses of a site):
        # the rest is set only when the response is planned (_prepare).
        self._plan_for = plan_for
        self._memo = memo
        self.scope = scope
        self._send = send
        self._start: Message | None = None
        self._began = False
        self._ended = False
        self._rewriter: Rewriter | None = None
        # Fail-closed state (walled article): ``_gated`` stays true for the whole response.
        self._gated = False

    def _prepare(self) -> None:
        """The state of a planned response (one the pass-through shortcut did not take)."""
        self._plan = _NO_PLAN
        self._headers: MutableHeaders | None = None
        self._decoder: StreamingDecoder | None = None
        self._replay: list[bytes] | None = []
        self._short_logged = 0
        # ``_held`` is a walled page's output kept back until the rewriter has settled.
        self._held: list[bytes] | None = None
        self._held_size = 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start = message
            return
        if self._ended:
            return  # we already finished the response (wall page, or a body cut short)
        if not self._began:
            self._began = True
            start = self._start
            if start is not None and self._plan_for.untouched(start["headers"]):
                # Nothing to do (the default plan, PASS): what the app sent goes out as
                # it is. Decided from the raw header list, before anything is built.
                await self._send(start)
                await self._send(message)
                return
            self._prepare()
            await self._begin(message)
            return
        if self._gated:
            await self._gated_message(message)
            return
        if kind == "http.response.body" and self._rewriter is not None:
            await self._body(message)
            return
        await self._send(message)

    async def _gated_message(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            await self._body(message)
        elif kind not in _HARMLESS_AFTER_START:
            await self._fail_closed(f"the app sent {kind!r}, which cannot be cut")
        # Trailers are dropped: they described the app's body, not ours.

    # -- the first body message decides the headers ---------------------------------
    async def _begin(self, first: Message) -> None:
        start = self._start
        if start is None:  # a body before the start: not ours to fix
            await self._send(first)
            return
        status = int(start["status"])
        headers = _response_headers(start)
        self._headers = headers
        plan = await self._plan_for(headers, status, first["type"])
        self._plan = plan
        if plan.mode is Mode.FAIL_CLOSED:
            self._gated = True
            await self._begin_gated(start, headers, first)
        else:
            await self._begin_best_effort(start, headers, first)

    def _start_rewriting(self, headers: MutableHeaders) -> None:
        """A rewriter for the plan's operations; gzip/deflate from the app is undone here
        (the outer server may compress again)."""
        plan = self._plan
        self._rewriter = Rewriter(
            plan.operations,
            content_type=plan.content_type,
            max_token_bytes=plan.max_token_bytes,
        )
        encoding = plan.content_encoding
        if encoding is None:
            return
        self._decoder = StreamingDecoder(encoding)
        del headers["content-encoding"]
        del headers["content-length"]

    def _whole_body(self, first: Message) -> bytes | None:
        """The body, when the memo can rewrite it in one piece: complete in the first
        message, not encoded, and a GET (HEAD has its own answer)."""
        if (
            self._memo is None
            or first["type"] != "http.response.body"
            or first.get("more_body", False)
            or self.scope["method"] == "HEAD"
            or self._plan.content_encoding is not None
        ):
            return None
        body = first.get("body", b"")
        return body if isinstance(body, bytes) else None

    def _rewrite_whole(self, body: bytes) -> bytes:
        memo, plan = self._memo, self._plan
        if memo is None:
            raise _Failed("no memo")
        output, short = memo.rewrite(
            plan.operations,
            body,
            content_type=plan.content_type,
            max_token_bytes=plan.max_token_bytes,
        )
        self._note_short_count(short)
        return output

    async def _send_whole(self, start: Message, headers: MutableHeaders, body: bytes) -> None:
        self._ended = True
        await self._send({**start, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _begin_best_effort(
        self, start: Message, headers: MutableHeaders, first: Message
    ) -> None:
        plan = self._plan
        whole = self._whole_body(first) if plan.mode is Mode.BEST_EFFORT else None
        if whole is not None:
            try:
                output = self._rewrite_whole(whole)
            except Exception as exc:  # e.g. a declared UTF-16 page: it goes out as it is
                self._log_not_rewritten(exc)
                apply_headers(headers, plan, rewritten=False)
                output = whole
            else:
                apply_headers(headers, plan, rewritten=True, content_length=len(output))
            await self._send_whole(start, headers, output)
            return
        original_headers = list(headers.raw)
        if plan.mode is Mode.BEST_EFFORT:
            try:
                self._start_rewriting(headers)
            except Exception as exc:  # e.g. a declared UTF-16 page: leave it as it is
                self._log_not_rewritten(exc)
                self._rewriter = self._decoder = None
                headers = MutableHeaders(raw=original_headers)
                self._headers = headers
        apply_headers(headers, plan, rewritten=self._rewriter is not None)
        if self._rewriter is None:
            await self._send({**start, "headers": headers.raw})
            await self._send(first)
            return
        if self.scope["method"] == "HEAD":
            await self._send_head(start, headers, first)
            return
        if not first.get("more_body", False):
            chunk = first.get("body", b"")
            body = self._best_effort(chunk, final=True)
            if self._rewriter is None:
                # Not rewritten: the app's bytes go out as the app sent them, with its
                # own Content-Encoding and Content-Length (a corrupt gzip body stays the
                # app's corrupt gzip body; a free page is never answered with a 500).
                headers = MutableHeaders(raw=original_headers)
                apply_headers(headers, plan, rewritten=False)
                body = chunk
            else:
                headers["content-length"] = str(len(body))
            await self._send({**start, "headers": headers.raw})
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            self._ended = True
            return
        # Streaming: the final length is unknown, so the server will chunk the body.
        del headers["content-length"]
        await self._send({**start, "headers": headers.raw})
        await self._body(first)

    async def _begin_gated(self, start: Message, headers: MutableHeaders, first: Message) -> None:
        plan = self._plan
        if plan.refuse is not None:
            await self._send_wall_page(plan.refuse)
            return
        whole = self._whole_body(first)
        if whole is not None:
            try:
                output = self._rewrite_whole(whole)
            except Exception as exc:  # whatever it is, none of the app's body goes out
                await self._send_wall_page(_why(exc))
                return
            apply_headers(headers, plan, rewritten=True, content_length=len(output))
            await self._send_whole(start, headers, output)
            return
        try:
            self._start_rewriting(headers)
        except Exception as exc:
            await self._send_wall_page(f"cannot rewrite: {_why(exc)}")
            return
        apply_headers(headers, plan, rewritten=True)
        if self.scope["method"] == "HEAD":
            await self._send_head(start, headers, first)
            return
        self._held = []
        await self._body(first)

    # -- bodies ---------------------------------------------------------------------
    async def _body(self, message: Message) -> None:
        chunk: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not self._gated:
            output = self._best_effort(chunk, final=not more)
            if self._ended:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            elif output or not more:
                await self._send({"type": "http.response.body", "body": output, "more_body": more})
                self._ended = not more
            return
        # A walled page: whatever goes wrong, in the rewriter, the decoder, a callback
        # or code nobody foresaw, must not let the app's bytes through.
        try:
            output = self._rewrite(chunk, final=not more)
        except Exception as exc:
            await self._fail_closed(_why(exc))
            return
        await self._release_or_hold(output, more)

    def _rewrite(self, chunk: bytes, *, final: bool) -> bytes:
        rewriter = self._rewriter
        if rewriter is None:
            raise _Failed("no rewriter")
        if self._decoder is not None:
            chunk = self._decoder.feed(chunk) + (self._decoder.close() if final else b"")
        output = rewriter.feed(chunk)
        if final:
            output += rewriter.close()
        self._note_short_articles(rewriter)
        return output

    def _note_short_articles(self, rewriter: Rewriter) -> None:
        self._note_short_count(rewriter.report.short_containers)

    def _note_short_count(self, short: int) -> None:
        """``wall.short_article = "free"`` let a container too short to cut out whole: say so."""
        if short > self._short_logged:
            self._short_logged = short
            logger.warning(
                "consentgate: walled article %s sent whole: its container holds fewer "
                'paragraphs than the lead (wall.short_article = "free")',
                self.scope["path"],
            )

    async def _release_or_hold(self, output: bytes, more: bool) -> None:
        rewriter = self._rewriter
        if rewriter is None:
            await self._fail_closed("no rewriter")
            return
        held = self._held
        if held is None:
            # Settled and under way: the rewriter cuts as it streams.
            if output or not more:
                await self._send({"type": "http.response.body", "body": output, "more_body": more})
                self._ended = not more
            return
        if more and not rewriter.settled:
            # The cut is not decided yet (container not found, or found and still
            # counting): nothing of it may go out, the wall page is still possible.
            held.append(output)
            self._held_size += len(output)
            if self._held_size > MAX_HELD_BYTES:
                await self._fail_closed(
                    f"the cut was not decided within the first {MAX_HELD_BYTES >> 20} MiB"
                )
            return
        body = b"".join([*held, output])
        self._held = None
        start, headers = self._start, self._headers
        if start is None or headers is None:
            await self._fail_closed("the response start is missing")
            return
        if more:
            del headers["content-length"]
        else:
            headers["content-length"] = str(len(body))
        await self._send({**start, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": body, "more_body": more})
        self._ended = not more

    async def _fail_closed(self, reason: str) -> None:
        self._rewriter = None
        self._decoder = None
        if self._held is not None:
            await self._send_wall_page(reason)
            return
        # Headers and the cut lead are out; end the body rather than send anything more.
        logger.error(
            "consentgate: ended the body of walled article %s early (the cut lead was "
            "already sent): %s",
            self.scope["path"],
            reason,
        )
        self._ended = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_wall_page(self, reason: str) -> None:
        """Fail closed: the CTA alone, none of the app's body."""
        self._ended = True
        self._held = None
        self._rewriter = None
        logger.error(
            "consentgate: sent the wall page for %s instead of the article: %s",
            self.scope["path"],
            reason,
        )
        fallback = self._plan.fallback
        start = self._start
        if fallback is None or start is None:
            raise RuntimeError("a wall page before the response was decided")
        body = b"" if self.scope["method"] == "HEAD" else fallback.render()
        headers = MutableHeaders(
            raw=[
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]
        )
        headers.update(fallback.headers)  # our page: framing, strict CSP
        original = _response_headers(start)
        for value in original.getlist("set-cookie"):
            headers.append("set-cookie", value)
        apply_headers(headers, self._plan, rewritten=True)
        if self.scope["method"] == "HEAD":
            del headers["content-length"]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _send_head(self, start: Message, headers: MutableHeaders, first: Message) -> None:
        # A HEAD answer must not announce a length the GET answer will not have.
        del headers["content-length"]
        self._rewriter = None
        self._ended = True
        await self._send({**start, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def _best_effort(self, chunk: bytes, *, final: bool) -> bytes:
        """Consent rewriting on a page the reader may read: the page must get through.

        Until the rewriter has produced output (it holds the first KiB to find the
        charset), we keep a copy of the input, so a page it refuses passes intact.
        Never used for a walled page: the check below keeps a future caller from making
        it one (a walled page ends here instead of passing through).
        """
        if self._gated:
            self._ended = True
            return b""
        if self._replay is not None:
            self._replay.append(chunk)
        try:
            output = self._rewrite(chunk, final=final)
        except Exception as exc:
            self._log_not_rewritten(exc)
            self._rewriter = None
            if self._replay is not None and self._decoder is None:
                return b"".join(self._replay)
            # The bytes the rewriter (or decoder) held are lost with it: a tag over
            # 16 MiB or a corrupt gzip stream. Ending the body beats corrupting it.
            self._ended = True
            return b""
        if output:
            self._replay = None
        return output

    def _log_not_rewritten(self, exc: Exception) -> None:
        logger.warning(
            "consentgate: HTML of %s not rewritten (%s); passed through as it was",
            self.scope.get("path"),
            _why(exc),
        )


def _response_headers(start: Message) -> MutableHeaders:
    """The app's headers with lower-case names, as HTTP/2 writes them.

    ASGI leaves the case of response header names to the app; Django sends
    ``Set-Cookie`` and ``Content-Type``. MutableHeaders compares lower-case names, so
    without this a cookie would slip past enforcement just by its spelling.
    """
    return MutableHeaders(raw=[(name.lower(), value) for name, value in start["headers"]])
