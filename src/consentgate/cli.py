"""The ``consentgate`` command.

``consentgate demo``          run the demo news site (source checkout only)
``consentgate check-config``  validate a consentgate.toml and summarise it (``--connect``:
                              and say whether its database and Redis answer)
``consentgate keygen``        print a new secret key
``consentgate admin-token``   print a new dashboard token and its config line
``consentgate migrate``       bring the database schema up to date
``consentgate export``        stream consents, acceptances or accounts as JSON lines or CSV
``consentgate show``          everything held about a consent id or an account (Art. 15)
``consentgate forget``        erase an account, pseudonymise its proof rows (Art. 17)
``consentgate stats``         the operator's figures, as text, JSON or an HTML report
``consentgate probe``         ask a running site for walled articles every way a reader could

Each command is one ``_add_<name>`` function that registers a subparser and sets
``handler``; the commands that read a configuration take ``--config PATH`` (default
./consentgate.toml); the operator commands do their work in :mod:`consentgate.operator`.
Output piped into a reader that stops early (``| head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import json
import math
import os
import secrets
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast
from urllib.parse import unquote, urlsplit

from consentgate.config import SECRET_KEYS_ENV, Config, ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from consentgate.operator.store import Window
    from consentgate.storage import Storage
    from consentgate.storage.sqlite import SQLiteStorage

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]

PROG = "consentgate"
DEFAULT_DATA_DIR = "demo-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
KEY_BYTES = 48  # secrets.token_urlsafe(48): 64 URL-safe characters, 384 bits
MAX_LISTED = 8  # longer lists are cut in the check-config summary
CONNECT_TIMEOUT = 5.0  # seconds: the bound on each check of check-config --connect
EXIT_BROKEN_PIPE = 128 + 13  # a closed stdout pipe; SIGPIPE is 13 on Linux, macOS, the BSDs


def examples_dir() -> Path:
    """Where the demo lives in a source checkout (``pip install -e .``)."""
    return Path(__file__).resolve().parents[2] / "examples"


# -- demo ---------------------------------------------------------------------------


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {port}")
    return port


def _add_demo(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo news site (The Harbour Ledger) behind consentgate",
        description="Run the demo news site from the source checkout's examples/newsroom "
        "with uvicorn. Consent records go to an SQLite file in the data directory.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"where the demo keeps its database (default ./{DEFAULT_DATA_DIR})",
    )
    parser.set_defaults(handler=_run_demo)


def _browser_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - only turned into a URL to show
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _run_demo(args: argparse.Namespace) -> int:
    examples = examples_dir()
    if not (examples / "newsroom" / "app.py").is_file():
        _error(
            "demo: the demo site ships with the source checkout, not with the package "
            f"(looked for {examples / 'newsroom'}). Clone the repository and run "
            "`./run demo`, or `pip install -e '.[dev]'` then `consentgate demo`."
        )
        return 2
    try:
        import uvicorn
    except ImportError:
        _error(
            "demo: uvicorn is not installed; install the dev extras: pip install 'consentgate[dev]'"
        )
        return 2

    root = str(examples.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module("examples.newsroom.app")
    create_app = cast("Callable[[Path], ASGIApp]", module.create_app)
    data_dir = Path(args.data_dir).expanduser().resolve()
    try:
        app = create_app(data_dir)
    except ConfigError as exc:
        _error(f"demo: {examples / 'newsroom' / 'consentgate.toml'}: {exc}")
        return 1

    url = _browser_url(args.host, args.port)
    print(f"The Harbour Ledger, consentgate's demo site: open {url}")
    print(f"  consent records: {data_dir / 'consentgate.db'}")
    print("  try another region with a header, e.g. curl -H 'X-Demo-Country: US' " + url)
    print("  stop with Ctrl+C", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


# -- check-config -------------------------------------------------------------------


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


def redact_url(url: str) -> str:
    """The database URL with any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


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
        ("server closed the connection unexpectedly", "connection closed by server"),
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
        async with asyncio.timeout(bound):
            return True, await check(url, bound)
    except _NotUsable as exc:
        return False, str(exc)
    except Exception as exc:
        return False, _failure(exc, url, min(time.monotonic() - started, bound))


def _failure(exc: Exception, url: str, elapsed: float) -> str:
    from consentgate.storage.base import StorageError

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
    """``text`` without the URL's password, should a driver ever repeat it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password is None or len(password) < _MASKED_MIN_LENGTH:
        return text
    for secret in (password, unquote(password)):
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


# -- keygen -------------------------------------------------------------------------


def _add_keygen(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="print a new random secret key",
        description="Print a new secret key on standard output (instructions go to "
        "standard error, so KEY=$(consentgate keygen) captures only the key).",
    )
    parser.set_defaults(handler=_run_keygen)


def new_secret_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def _run_keygen(args: argparse.Namespace) -> int:
    key = new_secret_key()
    print(key)
    _error(
        "\nPut the new key FIRST in secret_keys and keep the old ones after it:\n"
        f'    secret_keys = ["{key}", "<previous key>"]\n'
        f"or, in the environment (comma-separated, newest first):\n"
        f'    {SECRET_KEYS_ENV}="{key},<previous key>"\n'
        "The first key signs new cookies; the others are only used to verify existing ones.\n"
        "Remove an old key once the cookies it signed have expired (consent_lifetime_days).\n"
        "Keep keys out of version control."
    )
    return 0


# -- admin-token --------------------------------------------------------------------

ADMIN_TOKEN_BYTES = 32  # 256 bits


def _add_admin_token(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "admin-token",
        help="print a new admin dashboard token and the config line with its hash",
        description="Print a new random token for the admin dashboard, then the lines to "
        "put in consentgate.toml. Only the token's SHA-256 goes in the file; keep the "
        "token itself in a password manager.",
    )
    _config_option(parser)
    parser.set_defaults(handler=_run_admin_token)


def new_admin_token() -> tuple[str, str]:
    """(token, the SHA-256 hex of it that goes in ``[admin] token_sha256``)."""
    token = secrets.token_urlsafe(ADMIN_TOKEN_BYTES)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _run_admin_token(args: argparse.Namespace) -> int:
    token, digest = new_admin_token()
    print(token)
    print()
    print("[admin]")
    print(f'token_sha256 = "{digest}"')
    _error(
        "\nThe first line is the token: sign in at /consentgate/admin/login (under your "
        "prefix) with it, or send it as 'Authorization: Bearer <token>'.\nPut the [admin] "
        "lines in your config (only the hash is stored there); a new token replaces the "
        "old one and ends every dashboard session."
    )
    return 0


# -- the database commands ------------------------------------------------------------

DEFAULT_CONFIG = "consentgate.toml"


class CommandError(Exception):
    """A message for the operator and exit status 1."""


class _ConfigPath(argparse.Action):
    """Store ``--config PATH`` and note that it was given (``config_given``), so that a
    command with another way to name the file can refuse both at once."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.config_given = True


def _config_option(
    parser: argparse.ArgumentParser,
    *,
    help_text: str = f"the configuration with database_url (default ./{DEFAULT_CONFIG})",
) -> None:
    parser.add_argument(
        "--config", action=_ConfigPath, default=DEFAULT_CONFIG, metavar="PATH", help=help_text
    )
    parser.set_defaults(config_given=False)


def _load_config(path: str) -> Config:
    try:
        # These commands only read and write the database: no secret key needed here.
        return Config.from_toml(path, require_secret_keys=False)
    except ConfigError as exc:
        if exc.key == str(Path(path)):
            raise CommandError(f"{path}: {exc.reason}") from None
        raise CommandError(f"{path}: {exc.key}: {exc.reason}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from None


def _when(value: str) -> Any:
    from consentgate.operator.store import parse_when

    try:
        return parse_when(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=_when, metavar="ISO", help="from this UTC date or time (inclusive)"
    )
    parser.add_argument(
        "--until", type=_when, metavar="ISO", help="up to this UTC date or time (exclusive)"
    )


def _run_async(job: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a database command: configuration, storage and schema problems become
    one line on stderr and exit status 1, never a traceback."""
    from consentgate.storage.base import SchemaTooNewError, SchemaTooOldError, StorageError

    try:
        return asyncio.run(job())
    except CommandError as exc:
        _error(f"{PROG}: {exc}")
    except SchemaTooOldError as exc:
        _error(f"{PROG}: {exc} (run `{PROG} migrate`)")
    except SchemaTooNewError as exc:
        _error(f"{PROG}: {exc}")
    except StorageError as exc:
        _error(f"{PROG}: storage error: {exc}")
    except ValueError as exc:  # e.g. an unsupported database URL
        _error(f"{PROG}: {exc}")
    except KeyboardInterrupt:
        _error(f"{PROG}: interrupted")
        return 130
    return 1


def _with_storage(args: argparse.Namespace, work: Callable[[Config, Any], Awaitable[int]]) -> int:
    from consentgate.operator.store import open_storage

    async def job() -> int:
        config = _load_config(args.config)
        async with open_storage(config.database_url) as storage:
            return await work(config, storage)

    return _run_async(job)


# -- migrate --------------------------------------------------------------------------


def _add_migrate(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="bring the database schema up to date (safe to run again)",
        description="Apply the pending schema migrations of the configured database. "
        "Running it again does nothing. Run it once per upgrade, before starting the "
        "new version (the app refuses an out-of-date schema).",
    )
    _config_option(parser)
    parser.set_defaults(handler=_run_migrate)


def _run_migrate(args: argparse.Namespace) -> int:
    from consentgate.storage import storage_from_url

    async def job() -> int:
        config = _load_config(args.config)
        storage = storage_from_url(config.database_url)
        try:
            applied = await storage.migrate()
            version = await storage.schema_version()
        finally:
            await storage.close()
        where = redact_url(config.database_url)
        if applied:
            listed = ", ".join(str(v) for v in applied)
            plural = "s" if len(applied) > 1 else ""
            print(f"{where}: applied migration{plural} {listed}; now at version {version}")
        else:
            print(f"{where}: already at version {version}")
        return 0

    return _run_async(job)


# -- export ---------------------------------------------------------------------------


def _add_export(subparsers: Subparsers) -> None:
    from consentgate.operator.export import KINDS

    parser = subparsers.add_parser(
        "export",
        help="stream consents, acceptances or accounts as JSON lines or CSV",
        description="Write every row (in the window) to FILE or standard output, streamed "
        "in constant memory. JSON lines: one object per line, times in ISO-8601 UTC. CSV: "
        "a header row, categories separated by spaces. Accounts are exported without "
        "password hashes. A progress line goes to stderr when it is a terminal.",
    )
    parser.add_argument("kind", choices=KINDS, help="what to export")
    _window_options(parser)
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--output", metavar="FILE", help="default: standard output")
    _config_option(parser)
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from consentgate.operator.export import Progress, export
    from consentgate.operator.store import Window

    try:
        window = Window(args.since, args.until)
    except ValueError as exc:
        _error(f"{PROG}: {exc}")
        return 2

    async def work(config: Config, storage: Any) -> int:
        count = await export(
            storage, args.kind, out, window=window, fmt=args.format, progress=Progress()
        )
        if args.output:
            _error(f"{count} {args.kind} rows written to {args.output}")
        return 0

    out: TextIO = sys.stdout
    if args.output:
        try:
            # newline="": the csv module writes its own line endings.
            out = open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            _error(f"{PROG}: cannot write {args.output}: {exc.strerror or exc}")
            return 1
    try:
        return _with_storage(args, work)
    finally:
        if out is sys.stdout:
            out.flush()
        else:
            out.close()


# -- show -----------------------------------------------------------------------------


def _add_show(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "show",
        help="everything held about a consent id or an account (access requests)",
        description="For a reader's access request (GDPR Art. 15): `show consent ID` "
        "prints the full ledger history of a consent id; `show user EMAIL` the account "
        "(never the password hash), its acceptances, its consent rows and what is known "
        "about its meter. Read-only.",
    )
    parser.add_argument("what", choices=("consent", "user"))
    parser.add_argument("key", metavar="ID_OR_EMAIL")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    _config_option(parser)
    parser.set_defaults(handler=_run_show)


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _run_show(args: argparse.Namespace) -> int:
    from consentgate.operator.privacy import (
        consent_lines,
        consent_report,
        user_lines,
        user_report,
    )

    async def work(config: Config, storage: Any) -> int:
        if args.what == "consent":
            report = await consent_report(storage, args.key)
            if args.json:
                _print_json(report.to_json())
            else:
                print("\n".join(consent_lines(report)))
            return 0 if report.history else 1
        found = await user_report(storage, args.key)
        if found is None:
            if args.json:
                _print_json({"email": args.key, "found": False})
            _error(f"{PROG}: no account with the e-mail address {args.key!r}")
            return 1
        if args.json:
            _print_json(found.to_json())
        else:
            print("\n".join(user_lines(found)))
        return 0

    return _with_storage(args, work)


# -- forget ---------------------------------------------------------------------------


def _add_forget(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "forget",
        help="erase an account and pseudonymise its proof rows (erasure requests)",
        description="For a reader's erasure request (GDPR Art. 17): delete the account "
        "(e-mail, password hash) and remove the IP HMAC and user agent from its consent "
        "and acceptance rows. The rows themselves stay, as pseudonymous proof of consent "
        "(Art. 7(1), Art. 17(3)(b) and (e)); see docs/operators.md.",
    )
    parser.add_argument("what", choices=("user",))
    parser.add_argument("email", metavar="EMAIL")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _config_option(parser)
    parser.set_defaults(handler=_run_forget)


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _run_forget(args: argparse.Namespace) -> int:
    from consentgate.operator.privacy import forget_user

    async def work(config: Config, storage: Any) -> int:
        user = await storage.user_by_email(args.email)
        if user is None:
            _error(f"{PROG}: no account with the e-mail address {args.email!r}")
            return 1
        if not args.yes:
            question = (
                f"Erase the account {user.email} ({user.id}) and pseudonymise its consent "
                "and acceptance rows? This cannot be undone. [y/N] "
            )
            if not _confirm(question):
                _error("Nothing was changed.")
                return 1
        result = await forget_user(storage, user)
        print("\n".join(result.lines()))
        return 0

    return _with_storage(args, work)


# -- stats ----------------------------------------------------------------------------


def _add_stats(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="decisions, consent rates, GPC, banner and wall figures",
        description="Figures from the consent ledger (streamed) and the daily counters: "
        "decisions by action and method, consent rate per category over the latest "
        "decision of each consent id, GPC share, banner impressions and answers, wall "
        "impressions, registrations and the wall-to-registration conversion. The window "
        "needs --since and spans at most 366 days (as on the dashboard).",
    )
    _window_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with charts"
    )
    _config_option(parser)
    parser.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from consentgate.operator.report import render_report
    from consentgate.operator.stats import compute_stats, stats_lines
    from consentgate.operator.store import Window

    try:
        window = Window(args.since, args.until)
    except ValueError as exc:
        _error(f"{PROG}: {exc}")
        return 2
    problem = _stats_window_problem(window)
    if problem is not None:  # a usage error, found before the storage is opened
        _error(f"{PROG}: stats: {problem}")
        return 2

    report: list[str] = []

    async def work(config: Config, storage: Any) -> int:
        stats = await compute_stats(
            storage,
            window,
            categories=config.category_ids,
            required=config.required_category_ids,
        )
        if args.json:
            _print_json(stats.to_json())
        else:
            print("\n".join(stats_lines(stats)))
        if args.html:
            report.append(render_report(stats, site_name=config.site_name))
        return 0

    status = _with_storage(args, work)
    if status == 0 and report:
        try:
            Path(args.html).write_text(report[0], encoding="utf-8")
        except OSError as exc:
            _error(f"{PROG}: cannot write {args.html}: {exc.strerror or exc}")
            return 1
        _error(f"report written to {args.html}")
    return status


def _stats_window_problem(window: Window) -> str | None:
    """Why ``window`` is refused, or None. The dashboard's limit (MAX_WINDOW_DAYS, a
    start required) holds here too: a window of decades would read the whole ledger."""
    from consentgate.operator.stats import MAX_WINDOW_DAYS, WindowTooLong, check_window

    now = datetime.now(UTC)
    try:
        check_window(window, now, MAX_WINDOW_DAYS)
    except WindowTooLong:
        if window.since is None:
            return (
                "give --since (and --until, else until now): windows span at most "
                f"{MAX_WINDOW_DAYS} days"
            )
        end = "now" if window.until is None else f"--until {window.until.date()}"
        days = ((window.until or now) - window.since) / timedelta(days=1)
        return (
            f"the window from --since {window.since.date()} to {end} spans {days:.1f} days; "
            f"windows span at most {MAX_WINDOW_DAYS} days (split it: one run per year or month)"
        )
    return None


# -- probe ----------------------------------------------------------------------------


def _add_probe(subparsers: Subparsers) -> None:
    from consentgate.operator import probe

    parser = subparsers.add_parser(
        "probe",
        help="check a running site's wall for leaks, as anonymous readers would try",
        description="Fetch each walled article as a registered reader, then as anonymous "
        "readers through every channel (HEAD, ranges, conditionals, encodings, Accept and "
        "path variants, crawler claims); print a table. Exit status 1 on any leak, 2 on "
        "usage, sign-in or connection problems. See docs/operators.md.",
    )
    probe.add_arguments(parser)
    parser.set_defaults(handler=probe.run)


# -- entry point --------------------------------------------------------------------

COMMANDS: list[Callable[[Subparsers], None]] = [
    _add_demo,
    _add_check_config,
    _add_keygen,
    _add_admin_token,
    _add_migrate,
    _add_export,
    _add_show,
    _add_forget,
    _add_stats,
    _add_probe,
]


def build_parser() -> argparse.ArgumentParser:
    from consentgate import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Server-side cookie consent for ASGI news sites.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def _error(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point: the command's exit status. A reader that closes the pipe early
    (``consentgate export consents | head -1``) ends the command without a traceback."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe may show only at this flush
    except BrokenPipeError:
        # As the Python docs recommend (library/signal.html, "Note on SIGPIPE"): point
        # stdout at devnull so that the interpreter's own flush at exit cannot raise
        # again ("Exception ignored ... BrokenPipeError"). Exit status 141 = 128 + SIGPIPE,
        # what `yes | head -1` or `cat big | head -1` report, so a shell with `set -o
        # pipefail` sees consentgate stopped by a closed pipe like any other Unix tool.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    handler = cast("Handler | None", getattr(args, "handler", None))
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
