"""Real PostgreSQL and Redis for the storage tests: URLs, skip rules, fresh schemas, and a
TCP proxy that a test can stop to play an outage.

``CONSENTGATE_TEST_POSTGRES_URL`` and ``CONSENTGATE_TEST_REDIS_URL`` choose the servers.
An unreachable server skips its tests, unless ``CONSENTGATE_REQUIRE_SERVICES=1`` (CI),
where it fails them: a green run must not silently mean "nothing was tested".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


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

    schema = "cg_test_" + secrets.token_hex(6)
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


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``stop()`` is an outage.

    Stopping closes the listener *and* every forwarded connection, as a crashed or
    unreachable server would: pooled connections break, new ones are refused.
    ``start()`` again listens on the same port, so clients reconnect unchanged.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
