"""The commands on the configured database: ``migrate`` (the schema), ``export`` (rows as
JSON lines or CSV), ``show`` and ``forget`` (access and erasure requests) and ``stats``
(the figures, as text, JSON or an HTML report), with the ``--since``/``--until`` window
options they share. The work itself is done in :mod:`consentgate.operator`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from consentgate.cli._common import (
    PROG,
    CommandError,
    _config_option,
    _error,
    _load_config,
    _run_async,
    redact_url,
)
from consentgate.config import Config

if TYPE_CHECKING:
    from consentgate.cli._common import Subparsers
    from consentgate.operator.store import Window


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
        help="stream consents, acceptances, accounts or subscribers as JSON lines or CSV",
        description="Write every row (in the window) to FILE or standard output, streamed "
        "in constant memory. JSON lines: one object per line, times in ISO-8601 UTC. CSV: "
        "a header row, categories separated by spaces. Accounts are exported without "
        "password hashes. `export subscribers --list ID`: the current subscribers of a "
        "newsletter (email, subscribed_at, unsubscribe_url) for the sending platform. A "
        "progress line goes to stderr when it is a terminal.",
    )
    parser.add_argument("kind", choices=(*KINDS, "subscribers"), help="what to export")
    parser.add_argument(
        "--list", dest="list_id", metavar="ID", help="the newsletter (subscribers only)"
    )
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
    if (args.kind == "subscribers") != (args.list_id is not None):
        _error(f"{PROG}: --list ID goes with `export subscribers`, and only with it")
        return 2
    if args.kind == "subscribers" and (args.since or args.until):
        _error(f"{PROG}: --since/--until do not apply to subscribers (the current ones)")
        return 2
    if args.kind == "subscribers":
        problem = _subscribers_problem(args)
        if problem is not None:
            _error(f"{PROG}: {problem[1]}")
            return problem[0]

    async def work(config: Config, storage: Any) -> int:
        if args.kind == "subscribers":
            count = await _export_subscribers(config, storage, args, out)
        else:
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


def _subscribers_problem(args: argparse.Namespace) -> tuple[int, str] | None:
    """Why `export subscribers` cannot run, found before any output file is made:
    (exit status, message), or None."""
    try:
        config = _load_config(args.config)
    except CommandError as exc:
        return 1, str(exc)
    known = [lst.id for lst in config.newsletters]
    if args.list_id not in known:
        listed = ", ".join(known) if known else "none configured ([[newsletters]])"
        return 2, f"no newsletter {args.list_id!r}; the lists are: {listed}"
    if not config.secret_keys:
        # Each row's unsubscribe URL is signed: without the key it would not verify.
        return 1, "export subscribers needs the site's secret_keys (it signs unsubscribe URLs)"
    return None


async def _export_subscribers(
    config: Config, storage: Any, args: argparse.Namespace, out: TextIO
) -> int:
    from consentgate.accounts.links import Links
    from consentgate.accounts.newsletters import Newsletters
    from consentgate.operator.export import Progress, export_subscribers

    newsletters = Newsletters(
        storage,
        config.newsletters,
        Links(config.secret_keys, storage),
        public_url=config.public_url,
        prefix=config.prefix,
        site_name=config.site_name,
        opener=storage.open,
    )
    return await export_subscribers(
        newsletters, args.list_id, out, fmt=args.format, progress=Progress()
    )


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
