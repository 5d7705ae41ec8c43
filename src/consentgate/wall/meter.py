"""The article meter: N free articles per period, in a signed cookie and on the server.

The cookie (:class:`MeterCookieCodec`) is what decides for most readers; it is cheap and
needs no storage. It is also the part a reader controls: they can delete it (the meter
starts again) but not edit it (a bad signature counts as an *exhausted* meter, see
:meth:`MeterCookieCodec.loads`). :class:`ServerMeter` closes the "delete the cookie"
gap by also counting per reader id and per network (IPv4 /24, IPv6 /48) in storage.

Times are Unix seconds (UTC) throughout, as in the consent cookie; only the storage
protocol speaks :class:`~datetime.datetime`, because that is what the backends store.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from itsdangerous import BadData

from consentgate.keys import Keys, Purpose
from consentgate.storage.base import MeterOutcome

__all__ = [
    "METER_COOKIE_SALT",
    "MeterCookieCodec",
    "MeterLimit",
    "MeterState",
    "MeterStore",
    "MeterWindow",
    "ServerMeter",
    "ServerMeterVerdict",
    "article_key",
    "network_of",
    "new_reader_id",
]

METER_COOKIE_SALT = Purpose.METER.value
_ARTICLE_KEY_PREFIX = "consentgate.meter:"
_ARTICLE_KEY_LENGTH = 12  # 48 bits: collisions among one reader's few articles are negligible
_DAY = 86_400
_MAX_COOKIE_CHARS = 4096  # browsers cap a cookie at about 4 KB; longer is not ours
_MAX_COOKIE_READS = 64  # a lowered limit may leave more entries than `limit`; this caps junk
_READER_ID = re.compile(r"[0-9a-f]{32}")
_ARTICLE_KEY = re.compile(rf"[0-9a-f]{{{_ARTICLE_KEY_LENGTH}}}")


def new_reader_id() -> str:
    """128 random bits, hex: unguessable, so one reader cannot spend another's meter."""
    return secrets.token_hex(16)


def article_key(article_id: str) -> str:
    """A short hash of the article id: keeps the cookie small and reveals no URLs."""
    digest = hashlib.sha256((_ARTICLE_KEY_PREFIX + article_id).encode("utf-8")).hexdigest()
    return digest[:_ARTICLE_KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class MeterState:
    """What the meter cookie says about one reader.

    ``reads`` are ``(article key, unix time)`` pairs, one per distinct article.
    ``tampered`` means the cookie came back with a bad signature or shape: its reads
    cannot be trusted, so the meter counts as exhausted. ``is_new`` means no usable
    cookie came in (the caller must set one; for a tampered state, an exhausted one).
    """

    reader_id: str
    reads: tuple[tuple[str, int], ...] = ()
    tampered: bool = False
    is_new: bool = False

    @classmethod
    def new(cls, reader_id: str | None = None) -> MeterState:
        return cls(reader_id=reader_id or new_reader_id(), is_new=True)

    @classmethod
    def tampered_state(cls) -> MeterState:
        # A fresh id: the one in a cookie we cannot verify is not ours to trust. New, so
        # the caller replaces the bad cookie by a signed, exhausted one (``"x": 1``),
        # which then ages out like any meter; re-sending that one is not new, so it is
        # never re-signed (which would keep it exhausted for ever).
        return cls(reader_id=new_reader_id(), tampered=True, is_new=True)

    @property
    def article_keys(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.reads)

    def has_article(self, article_id: str) -> bool:
        """True when this article is among the recorded reads (expired or not)."""
        return article_key(article_id) in self.article_keys


@dataclass(frozen=True, slots=True)
class MeterWindow:
    """How many distinct articles per period, rolling or per calendar month (UTC).

    Google recommends monthly metering to news publishers; ``calendar_month=True`` resets
    on the 1st of each month, otherwise the last ``period_days`` days count.
    """

    limit: int = 3
    period_days: int = 30
    calendar_month: bool = False

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"meter limit must be at least 1, got {self.limit}")
        if self.period_days < 1:
            raise ValueError(f"meter period_days must be at least 1, got {self.period_days}")

    def starts_at(self, now: float) -> float:
        """The earliest time a read still counts (inclusive for calendar months)."""
        if self.calendar_month:
            today = datetime.fromtimestamp(now, UTC)
            first = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            return first.timestamp()
        return now - self.period_days * _DAY

    def is_active(self, read_at: float, now: float) -> bool:
        start = self.starts_at(now)
        # Rolling: "newer than now - period"; calendar: anything since the 1st, 00:00 UTC.
        return read_at >= start if self.calendar_month else read_at > start

    def active_reads(self, state: MeterState, now: float) -> list[tuple[str, int]]:
        """The reads that still count, one per article, oldest first."""
        first: dict[str, int] = {}
        for key, read_at in state.reads:
            if self.is_active(read_at, now) and (key not in first or read_at < first[key]):
                first[key] = read_at
        return sorted(first.items(), key=lambda item: item[1])

    def active(self, state: MeterState, now: float) -> MeterState:
        """The same state with expired reads dropped (what decisions must be made on)."""
        return replace(state, reads=tuple(self.active_reads(state, now)))

    def has_read(self, state: MeterState, article_id: str, now: float) -> bool:
        key = article_key(article_id)
        return any(k == key for k, _ in self.active_reads(state, now))

    def remaining(self, state: MeterState, now: float) -> int:
        if state.tampered:
            return 0
        return max(0, self.limit - len(self.active_reads(state, now)))

    def with_read(self, state: MeterState, article_id: str, now: float) -> MeterState:
        """Record a read: expired entries go, at most ``limit`` newest entries stay.

        A tampered state is returned unchanged: recording a read must never turn an
        untrusted meter back into a usable one. Re-reading keeps the first read's time,
        so re-reading cannot stretch an article's place in the window.
        """
        if state.tampered:
            return state
        reads = self.active_reads(state, now)
        key = article_key(article_id)
        if all(k != key for k, _ in reads):
            reads.append((key, int(now)))
        return replace(state, reads=tuple(reads[-self.limit :]))


class MeterCookieCodec:
    """Signs and reads the meter cookie (itsdangerous, HMAC-SHA-256, keys newest first)."""

    def __init__(self, keys: Keys | Sequence[str], window: MeterWindow) -> None:
        self._serializer = Keys.of(keys).timed_serializer(Purpose.METER)
        self._window = window

    @property
    def window(self) -> MeterWindow:
        return self._window

    def dumps(self, state: MeterState) -> str:
        """The cookie value. A tampered state is written as such (``"x": 1``), not reset."""
        payload: dict[str, Any] = {"r": state.reader_id}
        if state.tampered:
            payload["x"] = 1
        else:
            payload["a"] = [[key, read_at] for key, read_at in state.reads]
        return self._serializer.dumps(payload)

    def loads(self, value: str | None, now: float) -> MeterState:
        """The reader's meter as of ``now``, never an error.

        * missing cookie → a new reader (``is_new``, fresh id, no reads);
        * bad signature, foreign key, undecodable or wrong shape → ``tampered``, which
          counts as an exhausted meter (deleting the cookie is cheaper for a reader than
          forging one, so nothing is gained by being lenient here);
        * signed before the window starts → a new reader keeping its (verified) id. The
          cookie is re-signed whenever a read is recorded, so every read in it is at
          least as old as its signature: nothing in it can still count. Treating it as
          missing (rather than tampered) is what lets a loyal reader's meter reset.

        The returned state holds only the reads that are still active at ``now``.
        """
        if not value:
            return MeterState.new()
        if len(value) > _MAX_COOKIE_CHARS:
            return MeterState.tampered_state()
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadData, ValueError, TypeError):
            return MeterState.tampered_state()
        state = _state_from_payload(payload)
        if state is None:
            return MeterState.tampered_state()
        if not self._window.is_active(signed_at.timestamp(), now):
            return MeterState.new(state.reader_id)
        return self._window.active(state, now)


def _state_from_payload(payload: Any) -> MeterState | None:
    """Strict: anything but the exact shape :meth:`MeterCookieCodec.dumps` writes is None."""
    if not isinstance(payload, dict):
        return None
    reader_id = payload.get("r")
    if not (isinstance(reader_id, str) and _READER_ID.fullmatch(reader_id)):
        return None
    if payload.get("x") == 1:
        return MeterState(reader_id=reader_id, tampered=True)
    reads = payload.get("a")
    if not isinstance(reads, list) or len(reads) > _MAX_COOKIE_READS:
        return None
    parsed: list[tuple[str, int]] = []
    for entry in reads:
        if not (isinstance(entry, list) and len(entry) == 2):
            return None
        key, read_at = entry
        if not (isinstance(key, str) and _ARTICLE_KEY.fullmatch(key)):
            return None
        if isinstance(read_at, bool) or not isinstance(read_at, int) or read_at < 0:
            return None
        parsed.append((key, read_at))
    return MeterState(reader_id=reader_id, reads=tuple(parsed))


# ---------------------------------------------------------------------------------
# Server-side meter


class MeterStore(Protocol):
    """The one storage method the server meter needs (``Storage`` has it; so has
    ``RedisMeterStore``): check and record a read as a single atomic step."""

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome: ...


class MeterLimit(enum.Enum):
    """Which count refused the read."""

    READER = "reader"
    NETWORK = "network"


@dataclass(frozen=True, slots=True)
class ServerMeterVerdict:
    """``allowed`` False means the meter is exhausted; ``limited_by`` says which count.

    The counts are the distinct *other* articles found in the window, before this read.
    ``network_reads`` is None when the peer address gave no network key.
    """

    allowed: bool
    counted: bool
    reader_reads: int
    network_reads: int | None
    limited_by: MeterLimit | None = None


class ServerMeter:
    """Counts reads per reader id and per network, so clearing the cookie is not enough.

    Keys and article names are HMACs under ``secret_key``: the store holds neither
    addresses, reader ids nor URLs, only what is needed to count. Rotating the secret
    therefore starts every server-side count afresh (a reader gains at most one period).

    Atomic: check and record are one storage operation (a transaction holding the
    write lock in SQLite, advisory locks in PostgreSQL, a Lua script in Redis), so a
    burst of parallel requests from one reader or network never gets past the limit.
    """

    def __init__(
        self, storage: MeterStore, window: MeterWindow, network_limit: int, secret_key: str
    ) -> None:
        if network_limit < 1:
            raise ValueError(f"network_limit must be at least 1, got {network_limit}")
        if not secret_key:
            raise ValueError("the server meter needs a secret key")
        self._storage = storage
        self._window = window
        self._network_limit = network_limit
        self._secret = secret_key.encode("utf-8")

    async def check_and_count(
        self, reader_id: str, ip: str | None, article_id: str, now: float
    ) -> ServerMeterVerdict:
        """Refuse when either count already holds its limit of *other* articles.

        Re-reading an article already counted for this reader is always allowed and
        not counted again (as with the cookie): the reader's own list is bounded by the
        limit, so this opens nothing. Otherwise, an allowed read is recorded under both
        keys.
        """
        since = datetime.fromtimestamp(self._window.starts_at(now), UTC)
        article = self._hmac("article", article_id)
        reader_key = "reader:" + self._hmac("reader", reader_id)
        network = network_of(ip)
        network_key = "net:" + self._hmac("network", str(network)) if network else None

        outcome = await self._storage.meter_read(
            reader_key,
            network_key,
            article,
            datetime.fromtimestamp(now, UTC),
            since,
            self._window.limit,
            self._network_limit,
        )
        if outcome.already_read:
            return ServerMeterVerdict(True, False, outcome.reader_reads, None)
        if not outcome.recorded:
            limited_by = self._limited_by(outcome.reader_reads, outcome.network_reads)
            return ServerMeterVerdict(
                False, False, outcome.reader_reads, outcome.network_reads, limited_by
            )
        return ServerMeterVerdict(True, True, outcome.reader_reads, outcome.network_reads)

    def _limited_by(self, reader_others: int, network_others: int | None) -> MeterLimit | None:
        if reader_others >= self._window.limit:
            return MeterLimit.READER
        if network_others is not None and network_others >= self._network_limit:
            return MeterLimit.NETWORK
        return None

    def _hmac(self, purpose: str, value: str) -> str:
        # The purpose in the message keeps a reader id from colliding with an article id.
        message = f"consentgate.meter.{purpose}:{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]


def network_of(ip: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The reader's network: IPv4 /24, IPv6 /48 (one household or office); None if invalid.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, as dual-stack servers report
    IPv4 peers) is treated as the IPv4 address it is.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((address, 24), strict=False)
    unscoped = ipaddress.IPv6Address(int(address))  # a zone id ("%eth0") names no network
    return ipaddress.IPv6Network((unscoped, 48), strict=False)
