"""The responder at the ASGI level: headers held, bodies streamed, nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import make_gate, run


async def _call(
    app: Any, *, method: str = "GET", sent: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Call ``app`` as a server would; ``sent`` collects what it sends, as it sends it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/page",
        "raw_path": b"/page",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"news.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("news.test", 80),
    }
    sent = [] if sent is None else sent

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_streaming_output_leaves_before_the_app_finishes(tmp_path: Path) -> None:
    """The first half of a page reaches the client while the app still works on the rest."""
    first_half = b"<html><head></head><body>" + b"<p>lead paragraph</p>" * 2000
    seen_while_app_waits: list[int] = []
    outgoing: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html")],
            }
        )
        await send({"type": "http.response.body", "body": first_half, "more_body": True})
        await asyncio.sleep(0)
        seen_while_app_waits.append(sum(len(m.get("body", b"")) for m in outgoing))
        await send(
            {"type": "http.response.body", "body": b"<p>tail</p></body></html>", "more_body": False}
        )

    run(_call(make_gate(app, tmp_path), sent=outgoing))
    assert seen_while_app_waits[0] > len(first_half) * 0.9
    start = outgoing[0]
    assert start["type"] == "http.response.start"
    assert b"content-length" not in dict(start["headers"])
    body = b"".join(m.get("body", b"") for m in outgoing[1:])
    assert body.startswith(first_half[:1000])
    assert body.endswith(b"</body></html>")
    assert b'id="consentgate-banner"' in body


def test_streaming_start_is_held_until_the_first_body(tmp_path: Path) -> None:
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", b"26")],
            }
        )
        order.append("app sent start")
        await send({"type": "http.response.body", "body": b"<html><body></body></html>"[:26]})

    sent = run(_call(make_gate(app, tmp_path)))
    assert order == ["app sent start"]
    start = sent[0]
    headers = dict(start["headers"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert int(headers[b"content-length"]) == len(body)
    assert b'id="consentgate-banner"' in body


def test_streaming_head_request_keeps_no_stale_length(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", b"5000")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    sent = run(_call(make_gate(app, tmp_path), method="HEAD"))
    assert b"content-length" not in dict(sent[0]["headers"])


def test_streaming_304_passes_untouched(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 304,
                "headers": [(b"content-type", b"text/html"), (b"etag", b'"v1"')],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    sent = run(_call(make_gate(app, tmp_path)))
    assert sent[0]["status"] == 304
    assert dict(sent[0]["headers"])[b"etag"] == b'"v1"'


def test_streaming_utf16_page_passes_through_byte_identical(tmp_path: Path) -> None:
    page = "<html><body><p>Grüße</p></body></html>".encode("utf-16")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-16")],
            }
        )
        for i in range(0, len(page), 7):
            await send({"type": "http.response.body", "body": page[i : i + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = run(_call(make_gate(app, tmp_path)))
    assert b"".join(m.get("body", b"") for m in sent[1:]) == page


def test_streaming_non_http_scopes_pass_through(tmp_path: Path) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def scenario() -> None:
        gate = make_gate(app, tmp_path)

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: dict[str, Any]) -> None:
            return None

        await gate({"type": "websocket", "path": "/ws", "headers": []}, receive, send)

    run(scenario())
    assert seen == ["websocket"]


def test_streaming_undeclared_utf16_with_bom_passes_through_intact(tmp_path: Path) -> None:
    """The rewriter refuses UTF-16 only after sniffing the BOM: the held bytes come back."""
    page = "<html><body><p>Grüße aus dem Hafen</p></body></html>".encode("utf-16")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(page), 5):
            await send({"type": "http.response.body", "body": page[i : i + 5], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = run(_call(make_gate(app, tmp_path)))
    assert b"".join(m.get("body", b"") for m in sent[1:]) == page


def test_streaming_display_case_header_names_are_enforced(tmp_path: Path) -> None:
    """Apps may send ``Set-Cookie`` in any case; the spelling must not slip past."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Set-Cookie", b"ad_id=1; Path=/"),
            (b"SET-COOKIE", b"session=s; Path=/"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<html><body></body></html>"})

    sent = run(_call(make_gate(app, tmp_path)))
    cookies = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
    assert any(v.startswith(b"session=") for v in cookies)
    assert not any(v.startswith(b"ad_id=") for v in cookies)
    assert b'id="consentgate-banner"' in b"".join(m.get("body", b"") for m in sent[1:])
