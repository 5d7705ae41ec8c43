"""``consentgate demo``: run the demo news site (The Harbour Ledger) of a source checkout
with uvicorn, and ``examples_dir``, where that checkout keeps it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from consentgate.cli._common import _error
from consentgate.config import ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from consentgate.cli._common import Subparsers

DEFAULT_DATA_DIR = "demo-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def examples_dir() -> Path:
    """Where the demo lives in a source checkout (``pip install -e .``)."""
    return Path(__file__).resolve().parents[3] / "examples"


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
    print(f"  mail it sends (verification, sign-in links): {url}_demo/mailbox")
    print("  try another region with a header, e.g. curl -H 'X-Demo-Country: US' " + url)
    print("  stop with Ctrl+C", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
