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

This module holds the entry point (``main``) and the one list of commands (``COMMANDS``).
Each command is one ``_add_<name>`` function that registers a subparser and sets
``handler``, in the module of its concern: :mod:`.demo`, :mod:`.check_config`, :mod:`.keys`
(keygen, admin-token), :mod:`.database` (migrate, export, show, forget, stats) and
:mod:`.probe`; what they share (``--config PATH``, default ./consentgate.toml, error lines,
running a database job) is in :mod:`._common`. The operator commands do their work in
:mod:`consentgate.operator`. Output piped into a reader that stops early (``| head``) ends
the command quietly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from consentgate.cli._common import (
    DEFAULT_CONFIG,
    EXIT_BROKEN_PIPE,
    PROG,
    CommandError,
    _end_on_closed_pipe,
    redact_url,
)
from consentgate.cli.check_config import (
    CONNECT_TIMEOUT,
    MAX_LISTED,
    _add_check_config,
    summarize,
)
from consentgate.cli.database import (
    _add_export,
    _add_forget,
    _add_migrate,
    _add_show,
    _add_stats,
)
from consentgate.cli.demo import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    _add_demo,
    examples_dir,
)
from consentgate.cli.keys import (
    ADMIN_TOKEN_BYTES,
    KEY_BYTES,
    _add_admin_token,
    _add_keygen,
    new_admin_token,
    new_secret_key,
)
from consentgate.cli.probe import _add_probe

if TYPE_CHECKING:
    from consentgate.cli._common import Subparsers

__all__ = [
    "ADMIN_TOKEN_BYTES",
    "COMMANDS",
    "CONNECT_TIMEOUT",
    "DEFAULT_CONFIG",
    "DEFAULT_DATA_DIR",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXIT_BROKEN_PIPE",
    "KEY_BYTES",
    "MAX_LISTED",
    "PROG",
    "CommandError",
    "Handler",
    "build_parser",
    "examples_dir",
    "main",
    "new_admin_token",
    "new_secret_key",
    "redact_url",
    "summarize",
]

Handler = Callable[[argparse.Namespace], int]

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


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point: the command's exit status. A reader that closes the pipe early
    (``consentgate export consents | head -1``) ends the command without a traceback."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe may show only at this flush
    except BrokenPipeError:
        return _end_on_closed_pipe()
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
