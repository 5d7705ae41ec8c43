"""The ``consentgate`` command.

``consentgate demo``          run the demo news site (source checkout only)
``consentgate check-config``  validate a consentgate.toml and summarise it
``consentgate keygen``        print a new secret key

Each command is one ``_add_<name>`` function that registers a subparser and sets
``handler``; later commands (``migrate``, ``export``, ``show``, ``forget``, ``stats``)
plug in the same way by appending to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import secrets
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from consentgate.config import SECRET_KEYS_ENV, Config, ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]

PROG = "consentgate"
DEFAULT_DATA_DIR = "demo-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
KEY_BYTES = 48  # secrets.token_urlsafe(48): 64 URL-safe characters, 384 bits
MAX_LISTED = 8  # longer lists are cut in the check-config summary


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
            "demo: uvicorn is not installed; install the dev extras: "
            "pip install 'consentgate[dev]'"
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
        description="Load PATH the way the middleware does and report the first problem, "
        "or a summary of what it configures. Exit status 0 if valid, 1 if not.",
    )
    parser.add_argument("path", metavar="PATH", help="the TOML file, e.g. consentgate.toml")
    parser.set_defaults(handler=_run_check_config)


def _run_check_config(args: argparse.Namespace) -> int:
    shown = str(args.path)
    try:
        config = Config.from_toml(args.path)
    except ConfigError as exc:
        if exc.key == str(Path(args.path)):  # about the file itself, e.g. not found
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
    if not config.secret_keys:
        _error(f"{shown}: secret_keys: no secret key set (in the file or {SECRET_KEYS_ENV})")
        return 1
    print(f"{shown}: OK")
    for label, value in summarize(config, key_source=_key_source(Path(args.path))):
        print(f"  {label:<13} {value}")
    return 0


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


# -- entry point --------------------------------------------------------------------

COMMANDS: list[Callable[[Subparsers], None]] = [_add_demo, _add_check_config, _add_keygen]


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
