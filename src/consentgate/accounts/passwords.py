"""Password hashing (scrypt, standard library) and the password policy.

Stored hashes describe themselves — ``scrypt$n=16384,r=8,p=1$<salt>$<hash>`` (salt and
hash in unpadded URL-safe base64) — so the cost can be raised later: old hashes still
verify, and :func:`needs_rehash` tells the sign-in code to store a new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

__all__ = [
    "DUMMY_HASH",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "hash_password",
    "needs_rehash",
    "password_problem",
    "verify_password",
]

SCHEME = "scrypt"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
DKLEN = 64
SALT_BYTES = 16
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# Upper bounds on parameters read back from storage: a corrupted or planted row must
# not make one sign-in allocate gigabytes or run for minutes.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16

_PARAMS = re.compile(r"n=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})")


@dataclass(frozen=True, slots=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _password_bytes(password: str) -> bytes:
    # NFKC so that the same password typed on two keyboards (composed or decomposed
    # accents, full-width digits) matches; surrogatepass so no input can raise.
    return unicodedata.normalize("NFKC", password).encode("utf-8", "surrogatepass")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # scrypt needs 128 * r * n bytes; OpenSSL refuses above maxmem, so allow that plus slack.
    maxmem = 128 * r * n * (p + 1) + 1024 * 1024
    return hashlib.scrypt(
        _password_bytes(password), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem
    )


def hash_password(password: str) -> str:
    """A new self-describing scrypt hash with a random 16-byte salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, DKLEN)
    params = f"n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}"
    return f"{SCHEME}${params}${_b64encode(salt)}${_b64encode(digest)}"


def _parse(stored: str) -> _Parsed | None:
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        return None
    match = _PARAMS.fullmatch(parts[1])
    if match is None:
        return None
    n, r, p = (int(group) for group in match.groups())
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        return None
    try:
        salt, digest = _b64decode(parts[2]), _b64decode(parts[3])
    except (binascii.Error, ValueError):
        return None
    if not salt or not 16 <= len(digest) <= 128:
        return None
    return _Parsed(n, r, p, salt, digest)


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; a malformed ``stored`` is just False."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    try:
        candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, parsed.digest)


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was not made with today's parameters (or is unreadable)."""
    parsed = _parse(stored)
    if parsed is None:
        return True
    current = (SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, DKLEN)
    return (parsed.n, parsed.r, parsed.p, len(parsed.salt), len(parsed.digest)) != current


# Verified against when the e-mail is unknown, so that "no such account" costs the same
# scrypt run as "wrong password" and timing does not reveal who is registered.
DUMMY_HASH = hash_password(secrets.token_urlsafe(32))


def password_problem(
    password: str, email: str, *, min_length: int = MIN_PASSWORD_LENGTH
) -> str | None:
    """What is wrong with a new password, in words for the reader, or None if it is fine.

    Length is what matters (NIST SP 800-63B): no composition rules, which only push
    readers towards predictable patterns.
    """
    length = len(password)
    if length < min_length:
        return f"Choose a password of at least {min_length} characters; this one has {length}."
    if length > MAX_PASSWORD_LENGTH:
        return f"Choose a password of at most {MAX_PASSWORD_LENGTH} characters."
    if not password.strip():
        return "Choose a password that is not only spaces."
    if password.strip().casefold() == email.strip().casefold():
        return "Choose a password that is not your e-mail address."
    return None
