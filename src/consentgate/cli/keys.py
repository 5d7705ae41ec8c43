"""``consentgate keygen`` (a new secret key) and ``consentgate admin-token`` (a new
dashboard token and the config line with its hash).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
from typing import TYPE_CHECKING

from consentgate.cli._common import _config_option, _error
from consentgate.config import SECRET_KEYS_ENV

if TYPE_CHECKING:
    from consentgate.cli._common import Subparsers

KEY_BYTES = 48  # secrets.token_urlsafe(48): 64 URL-safe characters, 384 bits


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
