"""The site's own accounts: a tiny SQLite user store and a signed session cookie.

Deliberately small. A real site would use its framework's or its identity provider's
accounts; what matters here is how they meet consentgate:

* ``user_resolver`` tells consentgate who is signed in, from the ASGI scope;
* the sign-up view records the privacy-policy acceptance in consentgate's ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import sqlite3
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import cookie_parser
from starlette.types import Scope

SESSION_COOKIE = "courier_session"
SESSION_MAX_AGE = 30 * 24 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"{salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    salt_hex, _, digest_hex = stored.partition("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


class UserStore:
    """Users in one SQLite table; every call runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS users ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " email TEXT NOT NULL UNIQUE,"
                " password_hash TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    async def create(self, email: str, password: str) -> str | None:
        """The new user's id, or None when the e-mail is taken."""

        def insert() -> str | None:
            with self._connect() as db:
                try:
                    cursor = db.execute(
                        "INSERT INTO users (email, password_hash) VALUES (?, ?)",
                        (email, hash_password(password)),
                    )
                except sqlite3.IntegrityError:
                    return None
                return str(cursor.lastrowid)

        return await asyncio.to_thread(insert)

    async def authenticate(self, email: str, password: str) -> str | None:
        def check() -> str | None:
            with self._connect() as db:
                row = db.execute(
                    "SELECT id, password_hash FROM users WHERE email = ?", (email,)
                ).fetchone()
            if row is None:
                hash_password(password)  # same time for unknown e-mails
                return None
            return str(row[0]) if check_password(password, row[1]) else None

        return await asyncio.to_thread(check)

    async def exists(self, user_id: str) -> bool:
        def lookup() -> bool:
            with self._connect() as db:
                row = db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone()
            return row is not None

        return await asyncio.to_thread(lookup)

    async def delete(self, user_id: str) -> None:
        def remove() -> None:
            with self._connect() as db:
                db.execute("DELETE FROM users WHERE id = ?", (user_id,))

        await asyncio.to_thread(remove)


class Sessions:
    """``courier_session`` = the user id, signed and timestamped with itsdangerous."""

    def __init__(self, secret_key: str) -> None:
        self.serializer = URLSafeTimedSerializer(secret_key, salt="valley-courier.session")

    def dumps(self, user_id: str) -> str:
        return self.serializer.dumps({"uid": user_id})

    def loads(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            data = self.serializer.loads(value, max_age=SESSION_MAX_AGE)
        except BadSignature:  # also covers an expired signature
            return None
        uid = data.get("uid") if isinstance(data, dict) else None
        return uid if isinstance(uid, str) else None

    def cookie_header(self, user_id: str) -> str:
        return (
            f"{SESSION_COOKIE}={self.dumps(user_id)}; Path=/; Max-Age={SESSION_MAX_AGE}; "
            "HttpOnly; SameSite=Lax"
        )


def cookie_from_scope(scope: Scope, name: str) -> str | None:
    """One cookie's value from the raw ASGI headers (no framework request needed)."""
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(name)
            if found is not None:
                return found
    return None
