"""The probe's HTTP client against real local TCP servers that answer badly on purpose:
its deadline bounds the whole exchange, however the bytes are spread out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from consentgate.operator.probe.client import Client
from consentgate.operator.probe.errors import ExchangeFailed

TIMEOUT = 1.0
# What the deadline may be overrun by on a busy machine: scheduling, not a read.
MARGIN = 1.0

Handler = Callable[[socket.socket, threading.Event], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """Start a one-connection-at-a-time TCP server running ``handler``; its base URL."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        listeners.append(listener)

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with conn:
                    conn.settimeout(5)
                    try:
                        request = b""
                        while b"\r\n\r\n" not in request:
                            piece = conn.recv(4096)
                            if not piece:
                                break
                            request += piece
                        handler(conn, stop)
                    except OSError:
                        pass  # the client hung up: what a deadline does

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    stop.set()
    for listener in listeners:
        listener.close()
    for thread in threads:
        thread.join(timeout=5)


def _dribble(head: bytes, pieces: list[bytes], every: float) -> Handler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head)
        for piece in pieces:
            if stop.wait(every):
                return
            conn.sendall(piece)

    return handler


def _client(base_url: str, timeout: float = TIMEOUT) -> Client:
    return Client(base_url, timeout=timeout, max_requests=10, max_bytes=1024 * 1024)


def test_probe_client_body_dribbled_byte_by_byte_stops_at_the_deadline(
    serve: Callable[[Handler], str],
) -> None:
    # One byte every 0.2 s: each read gets a byte well within the timeout, so only a
    # deadline on the whole read stops it (at ~TIMEOUT, not the ~8 s the server takes).
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 40\r\n\r\n"
    base = serve(_dribble(head, [b"x"] * 40, 0.2))
    started = time.monotonic()
    with pytest.raises(ExchangeFailed, match="no answer in time"):
        _client(base).request("GET", "/slow", {})
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_probe_client_chunked_body_dribbled_stops_at_the_deadline(
    serve: Callable[[Handler], str],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
    base = serve(_dribble(head, [b"1\r\nx\r\n"] * 40 + [b"0\r\n\r\n"], 0.2))
    started = time.monotonic()
    with pytest.raises(ExchangeFailed, match="no answer in time"):
        _client(base).request("GET", "/slow", {})
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_probe_client_slow_body_inside_the_deadline_is_read_whole(
    serve: Callable[[Handler], str],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n"
    base = serve(_dribble(head, [b"a", b"b", b"c", b"d", b"e"], 0.05))
    answer = _client(base, timeout=5.0).request("GET", "/slow", {})
    assert (answer.status, answer.body, answer.truncated) == (200, b"abcde", False)


def test_probe_client_body_cut_short_is_kept_as_received(
    serve: Callable[[Handler], str],
) -> None:
    # The server closes after 3 of the 10 bytes it announced: the probe judges what came,
    # as it always has.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"
    base = serve(_dribble(head, [], 0))
    answer = _client(base).request("GET", "/short", {})
    assert (answer.status, answer.body, answer.truncated) == (200, b"abc", False)


def test_probe_client_body_over_max_bytes_is_cut_and_marked(
    serve: Callable[[Handler], str],
) -> None:
    body = b"y" * (3 * 1024 * 1024)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    base = serve(_dribble(head + body, [], 0))
    answer = _client(base, timeout=10.0).request("GET", "/big", {})
    assert (len(answer.body), answer.truncated) == (1024 * 1024, True)


def test_probe_client_headers_dribbled_byte_by_byte_stop_at_the_deadline(
    serve: Callable[[Handler], str],
) -> None:
    # The status line and headers a byte every 0.2 s: every receive is quick, their sum
    # (~14 s) is not; the deadline must hold before the body is even reached.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"
    base = serve(_dribble(b"", [bytes([byte]) for byte in head], 0.2))
    started = time.monotonic()
    with pytest.raises(ExchangeFailed, match="no answer in time"):
        _client(base).request("GET", "/slow-headers", {})
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_probe_client_headers_slow_inside_the_deadline_are_read(
    serve: Callable[[Handler], str],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    base = serve(_dribble(b"", [head[:10], head[10:20], head[20:]], 0.05))
    answer = _client(base, timeout=5.0).request("GET", "/slow-headers", {})
    assert (answer.status, answer.body) == (200, b"ok")
