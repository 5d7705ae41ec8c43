"""The pieces every ``consentgate`` command shares: the program name, ``_error`` (one line on
stderr), :class:`CommandError`, the ``--config PATH`` option and loading the file it names,
``_run_async`` (a database command's problems become one line and exit status 1), the
database URL as it may be shown (``redact_url``) and the quiet end on a closed stdout pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from consentgate.config import Config, ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "consentgate"
DEFAULT_CONFIG = "consentgate.toml"
EXIT_BROKEN_PIPE = 128 + 13  # a closed stdout pipe; SIGPIPE is 13 on Linux, macOS, the BSDs


def _error(message: str) -> None:
    print(message, file=sys.stderr)


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


def redact_url(url: str) -> str:
    """The database URL with any password replaced by ``***``: the one in the authority
    (``user:password@``) and libpq's ``password=`` parameter in the query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, question, query = rest.partition("?")
    if question:
        query = _PASSWORD_PARAMETER.sub(r"\1***", query)
    authority, slash, tail = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        authority = f"{user}:***@{host}"
    return f"{scheme}://{authority}{slash}{tail}{question}{query}"


def url_passwords(url: str) -> list[str]:
    """Every password a URL holds, as written and decoded: what no message may repeat."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if not sep:
        return found
    rest, _, query = rest.partition("?")
    credentials, at, _ = rest.partition("/")[0].rpartition("@")
    if at and ":" in credentials:
        found.append(credentials.split(":", 1)[1])
    found.extend(match.group(2) for match in _PASSWORD_PARAMETER.finditer(query))
    return [variant for secret in found if secret for variant in {secret, unquote(secret)}]


# libpq reads a password from the query as well (postgresql://u@h/db?password=…).
_PASSWORD_PARAMETER = re.compile(r"((?:^|&)password=)([^&#]*)", re.IGNORECASE)


def _end_on_closed_pipe() -> int:
    """After a BrokenPipeError on stdout: the exit status, with stdout made safe to flush."""
    # As the Python docs recommend (library/signal.html, "Note on SIGPIPE"): point
    # stdout at devnull so that the interpreter's own flush at exit cannot raise
    # again ("Exception ignored ... BrokenPipeError"). Exit status 141 = 128 + SIGPIPE,
    # what `yes | head -1` or `cat big | head -1` report, so a shell with `set -o
    # pipefail` sees consentgate stopped by a closed pipe like any other Unix tool.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
