"""Real PostgreSQL and Redis for the storage tests: URLs, skip rules, fresh schemas, and a
TCP proxy that a test can stop to play an outage.

``CONSENTGATE_TEST_POSTGRES_URL`` and ``CONSENTGATE_TEST_REDIS_URL`` choose the servers.
An unreachable server skips its tests, unless ``CONSENTGATE_REQUIRE_SERVICES=1`` (CI),
where it fails them: a green run must not silently mean "nothing was tested".
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import secrets
import socket
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"

# One id per test run (pytest session). Every Redis key and PostgreSQL schema a run
# makes carries it, so parallel runs (several developers on one machine, CI) never see
# each other's keys or rows, and the end of the session removes exactly its own
# (tests/conftest.py). No test may FLUSHDB: that wipes the keys of every other run.
RUN_ID = secrets.token_hex(5)
REDIS_KEY_PREFIX = f"cgtest:{RUN_ID}:"
POSTGRES_SCHEMA_PREFIX = f"cg_test_{RUN_ID}_"


def postgres_url() -> str:
    return os.environ.get("CONSENTGATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def redis_url() -> str:
    return os.environ.get("CONSENTGATE_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def _unavailable(message: str) -> None:
    if os.environ.get("CONSENTGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and CONSENTGATE_REQUIRE_SERVICES=1")
    pytest.skip(message)


def _where(url: str) -> str:
    """host:port/db without credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}{parts.path}"


def require_postgres() -> str:
    """The PostgreSQL URL, or a skip/fail when nothing answers there."""
    url = postgres_url()
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        _unavailable(f"PostgreSQL not reachable at {_where(url)} ({type(exc).__name__})")
    return url


def run_key_prefix(label: str = "") -> str:
    """A fresh Redis key prefix inside this run's (REDIS_KEY_PREFIX, then ``label`` and
    a random part): one test's keys, which the end of the session deletes if the test
    could not (tests/conftest.py)."""
    return f"{REDIS_KEY_PREFIX}{label}{secrets.token_hex(4)}:"


def run_redis_url(url: str) -> str:
    """``url`` with a fresh key prefix inside this run's (:func:`run_key_prefix`): the
    gate's meter and limiter keys then belong to one test of one run."""
    return with_query(url, key_prefix=run_key_prefix())


async def delete_keys(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (a redis.asyncio client): a test's own."""
    if not prefix.startswith(REDIS_KEY_PREFIX):
        raise ValueError(f"{prefix!r} is not a key prefix of this run")
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


def require_redis() -> str:
    url = redis_url()
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        _unavailable(f"Redis not reachable at {_where(url)} ({type(exc).__name__})")
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` with every session's search_path set to ``schema`` (libpq ``options``)."""
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def with_query(url: str, **params: object) -> str:
    parts = urlsplit(url)
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def with_address(url: str, host: str, port: int) -> str:
    """``url`` pointed at another host and port (the proxy), credentials kept."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_postgres_schema(url: str) -> Iterator[str]:
    """A new, uniquely named schema; yields a URL whose sessions use it; drops it after."""
    import psycopg

    schema = POSTGRES_SCHEMA_PREFIX + secrets.token_hex(4)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Fault(enum.Enum):
    """What the proxy plays: a working network, or one of the ways servers fail."""

    NONE = "none"  # forward both ways
    REFUSE = "refuse"  # nothing listens: connections are refused
    RESET = "reset"  # connections are accepted, then reset (RST) at once
    STALL = "stall"  # connections are accepted, then nothing is read or answered
    BLACKHOLE = "blackhole"  # accepted, everything sent is read and dropped, no answer


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``stop()`` is an outage.

    Stopping closes the listener *and* every forwarded connection, as a crashed or
    unreachable server would: pooled connections break, new ones are refused.
    ``start()`` again listens on the same port, so clients reconnect unchanged.

    ``fault(...)`` plays the other outages, for new connections and for those already
    open (so a pooled connection meets the fault too); ``heal()`` forwards again and
    resets the connections the fault touched, whose byte streams are no longer whole
    (what a client sees when a partition ends and the peer has given up on it).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._fault = Fault.NONE
        self._touched: set[asyncio.StreamWriter] = set()
        self._held: set[asyncio.StreamWriter] = set()

    @property
    def current_fault(self) -> Fault:
        return self._fault

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers | self._held):
            writer.transport.abort()
        self._writers.clear()
        self._held.clear()
        self._touched.clear()
        if server is not None:
            await server.wait_closed()

    async def fault(self, fault: Fault) -> None:
        """Start playing ``fault`` (``Fault.NONE`` is the same as :meth:`heal`)."""
        if fault is Fault.NONE:
            await self.heal()
            return
        if fault is Fault.REFUSE:
            await self.stop()
            self._fault = fault
            return
        await self.start()
        self._fault = fault
        if fault is Fault.RESET:
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()
        else:
            self._touched.update(self._writers)

    async def heal(self) -> None:
        """Forward again; connections the fault touched are reset."""
        self._fault = Fault.NONE
        for writer in list(self._touched | self._held):
            _reset(writer)
            self._writers.discard(writer)
        self._touched.clear()
        self._held.clear()
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self._fault
        if fault is Fault.RESET:
            _reset(writer)
            return
        if fault in (Fault.STALL, Fault.BLACKHOLE):
            # Accepted by the kernel already; hold it open, answer nothing.
            self._held.add(writer)
            if fault is Fault.BLACKHOLE:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    while await reader.read(65536):
                        pass
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer, writer),
            self._pipe(upstream_reader, writer, upstream_writer),
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self._fault is not Fault.NONE:
                    # Stalled or black-holed: what arrives is dropped, nothing answers.
                    self._touched.update((writer, peer))
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST), not a FIN: linger on, zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
