"""The ``probe`` command line: its options, the password, and the run."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from consentgate.operator.probe.errors import ProbeError
from consentgate.operator.probe.prober import run_probe
from consentgate.operator.probe.report import summary_line, table_lines
from consentgate.operator.probe.settings import (
    DEFAULT_COOKIES,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    PASSWORD_ENV,
    ProbeSettings,
)


def add_arguments(parser: Any) -> None:
    """The ``probe`` subcommand's options (``parser`` is an argparse parser)."""
    parser.add_argument("base_url", metavar="BASE_URL", help="e.g. https://news.example")
    parser.add_argument(
        "paths", metavar="PATH", nargs="+", help="walled article paths, e.g. /articles/x"
    )
    who = parser.add_argument_group("the registered reader")
    who.add_argument("--email", help="sign in through the site's own form as this reader")
    who.add_argument(
        "--password",
        help=f"the reader's password (better: set {PASSWORD_ENV}; asked for on a terminal)",
    )
    who.add_argument(
        "--session-cookie",
        metavar="[NAME=]VALUE",
        help="a signed-in reader's session cookie instead of a sign-in",
    )
    who.add_argument(
        "--session-cookie-name",
        default=DEFAULT_COOKIES.session,
        help=f"default {DEFAULT_COOKIES.session}",
    )
    parser.add_argument(
        "--spend",
        metavar="PATH",
        action="append",
        default=[],
        help="another metered article to read first so the meter is used up (repeat it)",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"default {DEFAULT_PREFIX}")
    parser.add_argument(
        "--meter-cookie", default=DEFAULT_COOKIES.meter, help=f"default {DEFAULT_COOKIES.meter}"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        help=f"seconds per request (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-requests",
        type=_positive(int),
        default=DEFAULT_MAX_REQUESTS,
        help=f"stop after this many requests (default {DEFAULT_MAX_REQUESTS})",
    )
    parser.add_argument(
        "--problems-only", action="store_true", help="list only the rows that are not ok"
    )


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    import argparse

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
        return number

    return parse


def _password(args: Any) -> str | None:
    if args.password is not None:
        return str(args.password)
    if os.environ.get(PASSWORD_ENV) is not None:
        return os.environ[PASSWORD_ENV]
    if args.email and sys.stdin.isatty():
        return getpass.getpass(f"password for {args.email}: ")
    return None


def run(args: Any, out: TextIO | None = None) -> int:
    """The ``probe`` command: the table on stdout, problems on stderr, the exit status."""
    stdout = out or sys.stdout
    if args.session_cookie and args.email:
        print("probe: give --email or --session-cookie, not both", file=sys.stderr)
        return 2
    try:
        settings = ProbeSettings(
            base_url=args.base_url,
            paths=tuple(args.paths),
            email=args.email,
            password=_password(args),
            session_cookie=args.session_cookie,
            spend=tuple(args.spend),
            prefix=args.prefix.rstrip("/"),
            meter_cookie=args.meter_cookie,
            session_cookie_name=args.session_cookie_name,
            timeout=args.timeout,
            max_requests=args.max_requests,
        )
        report = run_probe(settings)
    except ProbeError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probe: interrupted", file=sys.stderr)
        return 130
    for line in table_lines(report, problems_only=args.problems_only):
        print(line, file=stdout)
    print(file=stdout)
    print(summary_line(report), file=stdout)
    return report.exit_status
