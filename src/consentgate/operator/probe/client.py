"""HTTP for the probe: one bounded request per connection, answers as received, and
a cookie jar per reader."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from consentgate.operator.probe.errors import ExchangeFailed, ProbeError, RequestCapReached
from consentgate.operator.probe.settings import BROWSER_UA, HTML_ACCEPT


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes  # as received (still content-encoded)
    truncated: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class Jar:
    """One client's cookies for one site (the probe talks to one origin)."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self.cookies = dict(cookies or {})

    def copy(self) -> Jar:
        return Jar(self.cookies)

    def without(self, name: str) -> Jar:
        return Jar({k: v for k, v in self.cookies.items() if k != name})

    def header(self) -> str | None:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None

    def update(self, answer: Answer) -> None:
        for line in answer.all("set-cookie"):
            pair, *attributes = line.split(";")
            name, sep, value = pair.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            if _expired(attributes):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value.strip()


def _expired(attributes: Sequence[str]) -> bool:
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "max-age":
            try:
                return int(value) <= 0
            except ValueError:
                continue
        if key == "expires":
            try:
                return parsedate_to_datetime(value).timestamp() < time.time()
            except (TypeError, ValueError):
                continue
    return False


class Client:
    """Sequential requests to one origin, each on a new connection, each bounded."""

    def __init__(self, base_url: str, *, timeout: float, max_requests: int, max_bytes: int):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ProbeError(f"bad port in {base_url!r}") from None
        self.base_path = parts.path.rstrip("/")
        default_port = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"{self.scheme}://{host}" + (
            f":{self.port}" if self.port != default_port else ""
        )
        self.timeout = timeout
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.count = 0

    def target(self, path: str) -> str:
        return self.base_path + path

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        jar: Jar | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One exchange; :class:`ProbeError` on no answer (timeout, refused, reset)."""
        if self.count >= self.max_requests:
            raise RequestCapReached(f"the request cap ({self.max_requests}) was reached")
        self.count += 1
        started = time.monotonic()
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            # skip_accept_encoding: the channel, not http.client, chooses the encoding.
            connection.putrequest(method, self.target(path), skip_accept_encoding=True)
            sent = {"user-agent": BROWSER_UA, "accept": HTML_ACCEPT, "accept-encoding": "identity"}
            sent.update(headers)
            cookie = jar.header() if jar is not None else None
            if cookie:
                sent["cookie"] = cookie
            if body is not None:
                sent["content-length"] = str(len(body))
            for name, value in sent.items():
                if value:
                    connection.putheader(name, value)
            connection.endheaders(body)
            # Held here: http.client lets go of it once the answer says it will close.
            sock = connection.sock
            deadline = started + self.timeout
            # A socket timeout bounds each receive, not their sum: a server sending its
            # status line and headers a byte at a time would hold getresponse() for ever.
            # The watchdog shuts the socket at the deadline, whatever is being read.
            watchdog = _Watchdog(sock, deadline - time.monotonic())
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException):
                if watchdog.fired:
                    raise TimeoutError(
                        f"the status line and headers took longer than {self.timeout:g}s"
                    ) from None
                raise
            finally:
                watchdog.cancel()
            received = bytearray()
            truncated = False
            while True:
                # The deadline bounds the whole read: each read may wait only the time
                # left, and takes what one receive gives (read1), so a server sending a
                # byte now and then cannot stretch one read past it.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the body took longer than {self.timeout:g}s")
                if sock is not None:
                    sock.settimeout(left)
                chunk = response.read1(64 * 1024)
                if not chunk:
                    break
                received += chunk
                if len(received) > self.max_bytes:
                    truncated = True
                    break
            answer = Answer(
                status=response.status,
                headers=[(k.lower(), v) for k, v in response.getheaders()],
                body=bytes(received[: self.max_bytes]),
                truncated=truncated,
            )
        except (OSError, http.client.HTTPException) as exc:
            what = _describe(exc, f"{method} {self.origin}{self.target(path)}")
            if isinstance(exc, ConnectionRefusedError | socket.gaierror | ssl.SSLError):
                raise ProbeError(what) from None
            raise ExchangeFailed(what) from None
        finally:
            connection.close()
        if jar is not None:
            jar.update(answer)
        return answer


class _Watchdog:
    """Shuts ``sock`` down after ``seconds`` unless cancelled first."""

    def __init__(self, sock: socket.socket | None, seconds: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        if sock is not None:
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            # Already closed: nothing left to stop.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _describe(exc: BaseException, what: str) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"{what}: no answer in time ({exc or 'timeout'})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{what}: connection refused (is the site running?)"
    if isinstance(exc, socket.gaierror):
        return f"{what}: unknown host ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"{what}: TLS failed ({exc.reason or exc})"
    return f"{what}: {type(exc).__name__}: {exc}"
