"""Storage chosen by URL: the one place above the drivers that knows them all.

The drivers import nothing of each other; a PostgreSQL URL imports psycopg only when
it is used (the ``postgres`` extra), so a SQLite site never needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from consentgate.storage.ports import Storage

__all__ = ["open_storage", "storage_from_url"]

_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})


def storage_from_url(url: str) -> Storage:
    """Build the (unopened) storage a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` and
    ``sqlite:///:memory:`` are supported. Error messages name only the scheme, never
    the whole URL, because URLs of server databases carry passwords.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError("storage URL needs a scheme, e.g. sqlite:///consentgate.db")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _sqlite_from_url_rest(rest)
    if scheme.split("+", 1)[0] in _POSTGRES_SCHEMES:
        return _postgres_from_url(url)
    raise ValueError(
        f"unsupported storage URL scheme {scheme!r}; use sqlite:///path.db or postgresql://…"
    )


def _postgres_from_url(url: str) -> Storage:
    # psycopg is an optional extra: only PostgreSQL URLs may require it.
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            "PostgreSQL storage needs the postgres extra: install consentgate[postgres] "
            f"(missing module {exc.name!r})"
        ) from exc
    from consentgate.storage.postgres import PostgresStorage

    return PostgresStorage(url)


def _sqlite_from_url_rest(rest: str) -> Storage:
    # Imported here, like PostgreSQL's: a URL loads only its own backend.
    from consentgate.storage.sqlite import SQLiteStorage

    if not rest.startswith("/"):
        raise ValueError(
            "sqlite URLs take no host: use sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = rest[1:]
    if not path:
        raise ValueError("sqlite URL needs a database path, e.g. sqlite:///consentgate.db")
    path, _, query = path.partition("?")
    return SQLiteStorage(path, **_sqlite_params(query))


# busy_timeout: how long SQLite waits for another connection's write lock; the others
# bound every call and tune the circuit breaker (see storage/breaker.py).
_SQLITE_PARAMS = frozenset({"busy_timeout", "call_timeout", "breaker_failures", "breaker_cooldown"})


def _sqlite_params(query: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SQLITE_PARAMS:
            known = ", ".join(sorted(_SQLITE_PARAMS))
            raise ValueError(f"sqlite URLs take no query parameter {key!r} (only {known})")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"sqlite URL parameter {key} must be a number") from None
    return params


@asynccontextmanager
async def open_storage(url: str) -> AsyncIterator[Storage]:
    """The storage a URL names, opened (schema checked) and closed on leaving."""
    storage = storage_from_url(url)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()
