"""``consentgate check-config``: load a configuration the way the middleware does and print
the first problem or a summary (``summarize``); with ``--connect``, reach its database and
Redis, read-only and each within a bound, and say in one line each whether it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import socket
import sys
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from consentgate.cli._common import (
    DEFAULT_CONFIG,
    PROG,
    _config_option,
    _error,
    _run_async,
    redact_url,
    url_passwords,
)
from consentgate.config import SECRET_KEYS_ENV, Config, ConfigError

if TYPE_CHECKING:
    from consentgate.cli._common import Subparsers
    from consentgate.storage import Storage
    from consentgate.storage.sqlite import SQLiteStorage

MAX_LISTED = 8  # longer lists are cut in the check-config summary
CONNECT_TIMEOUT = 5.0  # seconds: the bound on each check of check-config --connect


def _add_check_config(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate a consentgate.toml and print a summary",
        description="Load the configuration the way the middleware does and report the "
        "first problem, or a summary of what it configures. With --connect, also connect "
        "to database_url and meter_url (read-only, each within --timeout seconds) and say "
        "whether each answers. Exit status 0 if valid (and reachable), 1 if not, 2 on "
        "usage errors.",
    )
    _config_option(parser, help_text=f"the TOML file to check (default ./{DEFAULT_CONFIG})")
    # The first spelling, `check-config PATH`, still works; give the file one way only.
    parser.add_argument("path", nargs="?", metavar="PATH", help="the same as --config PATH")
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also connect to database_url and meter_url, read-only, and say whether each "
        "answers (exit status 1 if one does not)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"how long each --connect check may take (default {CONNECT_TIMEOUT:g})",
    )
    parser.set_defaults(handler=_run_check_config)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return seconds


def _run_check_config(args: argparse.Namespace) -> int:
    if args.path is not None and args.config_given:
        _error(f"{PROG}: check-config: give the file once, as --config PATH or as PATH")
        return 2
    if args.timeout is not None and not args.connect:
        _error(f"{PROG}: check-config: --timeout bounds the --connect checks; give --connect")
        return 2
    path = args.path if args.path is not None else args.config
    shown = str(path)
    try:
        config = Config.from_toml(path)
    except ConfigError as exc:
        if exc.key == str(Path(path)):  # about the file itself, e.g. not found
            _error(f"{shown}: {exc.reason}")
        else:
            _error(f"{shown}: {exc.key}: {exc.reason}")
        return 1
    except UnicodeDecodeError:
        _error(f"{shown}: not UTF-8 text")
        return 1
    except OSError as exc:
        _error(f"{shown}: cannot read: {exc.strerror or exc}")
        return 1
    print(f"{shown}: OK")
    for label, value in summarize(config, key_source=_key_source(Path(path))):
        print(f"  {label:<13} {value}")
    if not args.connect:
        return 0
    timeout = CONNECT_TIMEOUT if args.timeout is None else args.timeout
    return _run_async(lambda: _report_connections(config, shown, timeout))


def _key_source(path: Path) -> str:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the file"
    return "the file" if "secret_keys" in raw else SECRET_KEYS_ENV


def _listing(items: Sequence[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f", … and {len(items) - MAX_LISTED} more"
    return shown


_UNLISTED = {
    "auto": "cookies not listed are blocked where consent is opt-in (auto)",
    "block": "cookies not listed are blocked everywhere",
    "allow": "cookies not listed are allowed everywhere",
}


def summarize(config: Config, *, key_source: str = "the file") -> list[tuple[str, str]]:
    """(label, value) lines describing a valid configuration, for people to read."""
    categories = []
    for category in config.categories:
        marks = (("required", category.required), ("GPC", category.gpc))
        flags = [flag for flag, on in marks if on]
        categories.append(category.id + (f" ({', '.join(flags)})" if flags else ""))
    rules = [f"{rule.pattern} → {rule.category}" for rule in config.cookies]
    policy = config.policy
    source = f" of {Path(policy.text_file).name}" if policy.text_file else " (no text_file)"
    regions = config.regions
    region_text = f"default {regions.default}"
    if regions.countries:
        by_country = [f"{code} {mode}" for code, mode in sorted(regions.countries.items())]
        region_text += f"; from header {regions.country_header}: {_listing(by_country)}"
    keys = len(config.secret_keys)
    return [
        ("site", config.site_name),
        ("categories", _listing(categories)),
        ("cookie rules", f"{len(rules)}: {_listing(rules)}" if rules else "none"),
        ("unlisted", _UNLISTED[config.unknown_cookies]),
        ("policy", f"version {policy.version} at {policy.url}"),
        ("policy text", f"sha256 {policy.text_sha256[:16]}…{source}"),
        ("database", redact_url(config.database_url)),
        ("regions", region_text),
        ("consent mode", "on" if config.consent_mode.enabled else "off"),
        ("secret keys", f"{keys} from {key_source}" + (" (rotation)" if keys > 1 else "")),
    ]


# -- check-config --connect ---------------------------------------------------------

# Timeout classes of the drivers, which are optional extras: matched by name, not imported.
_TIMEOUT_NAMES = frozenset({"TimeoutError", "ConnectionTimeout", "StorageTimeoutError"})
# (the OSError, what the drivers' messages say when they keep none, what we say)
_NETWORK_ERRORS: tuple[tuple[type[OSError] | None, tuple[str, ...], str], ...] = (
    (ConnectionRefusedError, ("connection refused",), "connection refused"),
    (ConnectionResetError, ("connection reset",), "connection reset"),
    (
        None,
        # libpq; redis-py as it reads ("... by server.") and as it writes ("... by the
        # server before write", when the reset comes before its first command is sent).
        (
            "server closed the connection unexpectedly",
            "connection closed by server",
            "connection closed by the server",
        ),
        "connection closed by the server",
    ),
)
_MASKED_MIN_LENGTH = 4  # a shorter "password" would garble every message it is masked in

# A check gets the URL and the bound (seconds) and says what it found, or raises.
StoreCheck = Callable[[str, float], Awaitable[str]]


class _NotUsable(Exception):
    """The store answered, or its file is there, but the app could not use it as it is."""


async def _report_connections(config: Config, shown: str, bound: float) -> int:
    """Reach every store the configuration names, all at once, each within ``bound`` s:
    one line each, on stdout when it answers, on stderr (``PATH: KEY: why``) when not."""
    checks: list[tuple[str, str, StoreCheck]] = [
        ("database_url", config.database_url, _check_database)
    ]
    if config.meter_url is not None:
        checks.append(("meter_url", config.meter_url, _check_redis))
    results = await asyncio.gather(*(_bounded(check, url, bound) for _, url, check in checks))
    status = 0
    for (key, url, _), (reachable, text) in zip(checks, results, strict=True):
        text = _mask_password(text, url)
        if reachable:
            print(f"  {key:<13} {text}")
        else:
            sys.stdout.flush()  # the lines stay in order on a terminal
            _error(f"{shown}: {key}: {text}")
            status = 1
    return status


async def _bounded(check: StoreCheck, url: str, bound: float) -> tuple[bool, str]:
    """(reachable, what to say): ``check`` cut off after ``bound`` seconds, and every
    failure turned into its one line, never a traceback."""
    started = time.monotonic()
    try:
        await _name_lookup(url, bound)
        async with asyncio.timeout(max(0.0, bound - (time.monotonic() - started))):
            return True, await check(url, bound)
    except _NotUsable as exc:
        return False, str(exc)
    except Exception as exc:
        return False, _failure(exc, url, min(time.monotonic() - started, bound))


class _LookupTimedOut(Exception):
    pass


async def _name_lookup(url: str, bound: float) -> None:
    """Resolve the URL's host first, in a daemon thread of our own.

    The drivers resolve in asyncio's executor, whose threads the interpreter joins at
    exit: a DNS server that never answers kept the command from ending long after the
    bound had said "timed out". A daemon thread left hanging does not hold the exit, and
    the driver is not called until the name resolved (it then finds it in the cache, or
    asks again within what is left of the bound).
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return  # the driver says what is wrong with the URL
    if not host or host.startswith("/"):
        return  # SQLite, or a Unix socket directory
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            pass  # an unknown name: the driver's own message says so
        finally:
            with contextlib.suppress(RuntimeError):  # the loop ended first
                loop.call_soon_threadsafe(settle)

    threading.Thread(target=lookup, name="consentgate-dns", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), bound)
    except TimeoutError:
        raise _LookupTimedOut(f"the name {host} did not resolve in {bound:g} s") from None


def _failure(exc: Exception, url: str, elapsed: float) -> str:
    from consentgate.storage.base import StorageError

    if isinstance(exc, _LookupTimedOut):
        return f"unreachable: {exc}"
    chain = _causes(exc)
    if any(cls.__name__ in _TIMEOUT_NAMES for e in chain for cls in type(e).__mro__):
        return f"unreachable: timed out after {elapsed:.1f} s"
    message = str(exc).lower()
    for error, phrases, what in _NETWORK_ERRORS:
        # libpq says it in its message only; redis-py keeps the OSError as the context.
        found = error is not None and any(isinstance(e, error) for e in chain)
        if found or any(phrase in message for phrase in phrases):
            where = _address(url)
            return f"unreachable: {what}" + (f" ({where})" if where else "")
    if isinstance(exc, ValueError | StorageError):  # a URL the driver refuses; our own words
        return _one_line(exc)
    return f"cannot connect: {_one_line(exc)}"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _one_line(exc: BaseException) -> str:
    lines = (" ".join(line.split()) for line in str(exc).splitlines())
    text = "; ".join(line for line in lines if line) or type(exc).__name__
    # psycopg's "connection failed: connection to server at … failed: FATAL: …"
    return text.removeprefix("connection failed: ")


def _address(url: str) -> str:
    """host:port of a server URL, for messages; "" when it names none (SQLite, sockets)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""
    if not host:
        return ""
    default = 6379 if parts.scheme.startswith("redis") else 5432
    return f"[{host}]:{port or default}" if ":" in host else f"{host}:{port or default}"


def _mask_password(text: str, url: str) -> str:
    """``text`` without the URL's passwords, should a driver ever repeat one."""
    for secret in url_passwords(url):
        if len(secret) >= _MASKED_MIN_LENGTH:
            text = text.replace(secret, "***")
    return text


async def _check_database(url: str, bound: float) -> str:
    """Open the database as the app does, read-only: its schema version must be the one
    this consentgate runs (or none yet: the app creates it on an empty database)."""
    from consentgate.storage import sqlite, storage_from_url

    storage = storage_from_url(url)
    if isinstance(storage, sqlite.SQLiteStorage):
        return await _check_sqlite(storage)
    return await _check_postgres(url, storage, bound)


async def _check_sqlite(storage: SQLiteStorage) -> str:
    from consentgate.storage.sqlite import SCHEMA_VERSION

    if storage.path == ":memory:":
        return "reachable (SQLite in memory: nothing is kept after a restart)"
    if not _sqlite_file_exists(Path(storage.path)):  # the check leaves no file behind
        return "reachable (SQLite, no database yet: the app creates it at first start)"
    try:
        version = await storage.schema_version()
        await storage.ping()
    finally:
        await storage.close()
    return _schema_state("SQLite", version, SCHEMA_VERSION)


def _sqlite_file_exists(path: Path) -> bool:
    """Whether the file is there; :class:`_NotUsable` when the app could not write it
    (or create it: the app creates a missing file and its folders at start)."""
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise _NotUsable(f"{path} is not writable (the app records every decision there)")
        return True
    folder = next(parent for parent in path.parents if parent.exists())
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _NotUsable(f"cannot create {path}: {folder} is not writable")
    return False


async def _check_postgres(url: str, storage: Storage, bound: float) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from consentgate.storage.postgres import SCHEMA_VERSION, split_url

    conninfo, _ = split_url(url)
    options: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(conninfo):
        # Past our own bound, so that the bound, one message for every store, ends it.
        options["connect_timeout"] = math.ceil(bound) + 1
    try:
        # One plain connection first: its error says why (refused, no such database,
        # authentication), where the pool would only report waiting for a connection.
        conn = await psycopg.AsyncConnection.connect(conninfo, **options)
        try:
            server = conn.info.parameter_status("server_version") or ""
        finally:
            await conn.close()
        version = await storage.schema_version()  # then the app's own way in: its pool
    finally:
        await storage.close()
    engine = f"PostgreSQL {server.split()[0]}" if server.strip() else "PostgreSQL"
    return _schema_state(engine, version, SCHEMA_VERSION)


def _schema_state(engine: str, version: int, needed: int) -> str:
    from consentgate.storage.base import SchemaTooNewError, SchemaTooOldError

    if version == needed:
        return f"reachable ({engine}, schema version {version})"
    if version == 0:
        return f"reachable ({engine}, empty: the app creates schema version {needed} at start)"
    problem: Exception = (
        SchemaTooOldError(version, needed)
        if version < needed
        else SchemaTooNewError(version, needed)
    )
    raise _NotUsable(f"reachable ({engine}), but {problem}")


async def _check_redis(url: str, bound: float) -> str:
    """A PING on a client built as the app builds it, then the server's version."""
    from redis.exceptions import ResponseError

    from consentgate.storage.redis import redis_client_from_url

    # Socket timeouts past our own bound, so that the bound, one message for every
    # store, ends a silent server; the URL's own timeouts still win, as in the app.
    client = redis_client_from_url(url, timeout=bound + 1)
    try:
        await client.ping()
        try:
            info: dict[str, Any] = await client.info("server")
        except ResponseError:  # INFO renamed or disabled (some managed Redis): PING said it
            return "reachable (Redis)"
    finally:
        await client.aclose()
    version = info.get("redis_version")
    return f"reachable (Redis {version})" if version else "reachable (Redis)"
