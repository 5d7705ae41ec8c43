"""The meter: cookie window, signing, tampering, rotation, and the server-side counts."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeTimedSerializer
from tests.conftest import tamper_signature

from consentgate.consent.state import consent_serializer
from consentgate.storage.base import MeterOutcome, meter_outcome
from consentgate.wall.access import AccessLevel, AccessReason, decide_access
from consentgate.wall.meter import (
    METER_COOKIE_SALT,
    MeterCookieCodec,
    MeterLimit,
    MeterState,
    MeterWindow,
    ServerMeter,
    article_key,
    network_of,
)

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-secret-key-0123456789-abcdefghijklmnopq"
FOREIGN_SECRET = "foreign-secret-key-0123456789-abcdefghijkl"
DAY = 86_400
NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC).timestamp()
WINDOW = MeterWindow(limit=3, period_days=30)


def run_reads(window: MeterWindow, state: MeterState, *reads: tuple[str, float]) -> MeterState:
    for article, at in reads:
        state = window.with_read(state, article, at)
    return state


def test_article_key_is_short_hash_without_the_url() -> None:
    key = article_key("/articles/secret-budget-plan")
    assert len(key) == 12
    assert all(c in "0123456789abcdef" for c in key)
    assert key != article_key("/articles/other")


def test_meter_three_distinct_reads_then_fourth_refused() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    cookie: str | None = None
    outcomes = []
    for index, article in enumerate(["/a/1", "/a/2", "/a/3", "/a/4"]):
        now = NOW + index * 60
        state = codec.loads(cookie, now)
        decision = decide_access(
            AccessLevel.METERED,
            article,
            user_id=None,
            needs_policy_acceptance=False,
            meter=state,
            limit=WINDOW.limit,
            verified_crawler=False,
        )
        outcomes.append(decision.reason)
        if decision.count_read:
            cookie = codec.dumps(WINDOW.with_read(state, article, now))
    assert outcomes == [
        AccessReason.METER_ALLOWS,
        AccessReason.METER_ALLOWS,
        AccessReason.METER_ALLOWS,
        AccessReason.METER_EXHAUSTED,
    ]


def test_meter_rereading_counted_article_does_not_spend() -> None:
    state = run_reads(WINDOW, MeterState.new(), ("/a/1", NOW), ("/a/1", NOW + 10))
    assert len(state.reads) == 1
    assert state.reads[0][1] == int(NOW)  # the first read's time is kept
    assert WINDOW.remaining(state, NOW + 20) == 2
    assert WINDOW.has_read(state, "/a/1", NOW + 20)


def test_meter_rolling_window_expires_after_period() -> None:
    state = run_reads(WINDOW, MeterState.new(), ("/a/1", NOW), ("/a/2", NOW), ("/a/3", NOW))
    assert WINDOW.remaining(state, NOW + 29 * DAY) == 0
    assert WINDOW.remaining(state, NOW + 30 * DAY) == 3
    assert not WINDOW.has_read(state, "/a/1", NOW + 30 * DAY)


def test_meter_calendar_month_resets_on_the_first() -> None:
    window = MeterWindow(limit=3, calendar_month=True)
    end_of_may = datetime(2024, 5, 31, 23, 59, tzinfo=UTC).timestamp()
    first_of_june = datetime(2024, 6, 1, 0, 0, tzinfo=UTC).timestamp()
    state = run_reads(window, MeterState.new(), ("/a/1", NOW), ("/a/2", NOW), ("/a/3", NOW))
    assert window.remaining(state, end_of_may) == 0
    assert window.remaining(state, first_of_june) == 3


def test_meter_with_read_drops_expired_and_keeps_at_most_limit() -> None:
    old = run_reads(WINDOW, MeterState.new(), ("/old/1", NOW - 40 * DAY))
    state = run_reads(
        WINDOW, old, ("/a/1", NOW), ("/a/2", NOW + 1), ("/a/3", NOW + 2), ("/a/4", NOW + 3)
    )
    keys = [key for key, _ in state.reads]
    assert article_key("/old/1") not in keys
    assert keys == [article_key(a) for a in ("/a/2", "/a/3", "/a/4")]


def test_meter_missing_cookie_is_new_reader() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    first, second = codec.loads(None, NOW), codec.loads("", NOW)
    assert first.is_new and not first.tampered and first.reads == ()
    assert len(first.reader_id) == 32
    assert first.reader_id != second.reader_id


def test_meter_roundtrip_keeps_reader_and_reads() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    state = run_reads(WINDOW, MeterState.new(), ("/a/1", NOW), ("/a/2", NOW + 5))
    loaded = codec.loads(codec.dumps(state), NOW + 10)
    assert loaded.reader_id == state.reader_id
    assert loaded.reads == state.reads
    assert not loaded.is_new and not loaded.tampered


@pytest.mark.parametrize(
    "mangle",
    [
        tamper_signature,
        lambda v: "x" + v,  # payload
        lambda v: "not-a-cookie",
        lambda v: v + "." + v,
        lambda v: "A" * 5000,
    ],
)
def test_meter_tampered_cookie_counts_as_exhausted(mangle: object) -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    value = codec.dumps(MeterState.new())
    state = codec.loads(mangle(value), NOW)  # type: ignore[operator]
    assert state.tampered
    assert WINDOW.remaining(state, NOW) == 0


def test_meter_tampered_stays_exhausted_after_adding_a_read_and_resigning() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    tampered = codec.loads("garbage", NOW)
    after = WINDOW.with_read(tampered, "/a/1", NOW)
    assert after.tampered and after.reads == ()
    reloaded = codec.loads(codec.dumps(after), NOW + 60)
    assert reloaded.tampered
    assert WINDOW.remaining(reloaded, NOW + 60) == 0


def test_meter_foreign_key_cookie_is_tampered() -> None:
    ours = MeterCookieCodec([SECRET], WINDOW)
    foreign = MeterCookieCodec([FOREIGN_SECRET], WINDOW)
    assert ours.loads(foreign.dumps(MeterState.new()), NOW).tampered


def test_meter_wrong_payload_shape_under_our_key_is_tampered() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    # Signed exactly as the codec signs, so the shape check is what refuses them.
    serializer = URLSafeTimedSerializer(
        [SECRET], salt=METER_COOKIE_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )
    for payload in ({"r": "short"}, {"r": "0" * 32, "a": [["/url/in/clear", 1]]}, [1, 2]):
        assert codec.loads(serializer.dumps(payload), NOW).tampered


def test_meter_consent_salt_cookie_is_not_a_meter_cookie() -> None:
    # Same key, other purpose: the per-purpose salt keeps cookies from being swapped.
    value = consent_serializer((SECRET,)).dumps({"r": "0" * 32, "a": []})
    assert MeterCookieCodec([SECRET], WINDOW).loads(value, NOW).tampered


def test_meter_signature_older_than_window_is_new_reader_with_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    state = run_reads(WINDOW, MeterState.new(), ("/a/1", NOW), ("/a/2", NOW), ("/a/3", NOW))
    monkeypatch.setattr("time.time", lambda: NOW)  # itsdangerous stamps with time.time()
    value = codec.dumps(state)
    monkeypatch.undo()
    loaded = codec.loads(value, NOW + 31 * DAY)
    assert loaded.is_new and not loaded.tampered and loaded.reads == ()
    assert loaded.reader_id == state.reader_id


def test_meter_cookie_size_stays_bounded_with_limit_reads() -> None:
    codec = MeterCookieCodec([SECRET], WINDOW)
    state = MeterState.new()
    for index in range(20):  # more reads than the limit: only `limit` stay
        state = WINDOW.with_read(state, f"/articles/2024/05/a-long-slug-{index}", NOW + index)
    value = codec.dumps(state)
    assert len(state.reads) == WINDOW.limit
    assert len(value) < 400
    assert "articles" not in value


def test_meter_key_rotation_reads_old_and_signs_with_newest() -> None:
    old_codec = MeterCookieCodec([OLD_SECRET], WINDOW)
    rotated = MeterCookieCodec([SECRET, OLD_SECRET], WINDOW)
    new_only = MeterCookieCodec([SECRET], WINDOW)
    state = run_reads(WINDOW, MeterState.new(), ("/a/1", NOW))
    from_old = rotated.loads(old_codec.dumps(state), NOW)
    assert not from_old.tampered and from_old.reads == state.reads
    resigned = rotated.dumps(from_old)
    assert new_only.loads(resigned, NOW).reads == state.reads
    assert old_codec.loads(resigned, NOW).tampered


def test_meter_window_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        MeterWindow(limit=0)
    with pytest.raises(ValueError, match="period_days"):
        MeterWindow(period_days=0)


# ---------------------------------------------------------------------------------
# Server-side meter


class DictMeterStore:
    """In-memory MeterStore. A fake, acceptable here: the real SQLite methods are being
    written concurrently by another engineer; the lead runs these tests against SQLite."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[str, datetime]]] = defaultdict(list)

    async def record_read(self, key: str, article: str, at: datetime) -> None:
        self.rows[key].append((article, at))

    async def distinct_reads(self, key: str, since: datetime) -> frozenset[str]:
        return frozenset(article for article, at in self.rows[key] if at >= since)

    async def meter_read(
        self,
        reader_key: str,
        network_key: str | None,
        article: str,
        at: datetime,
        since: datetime,
        reader_limit: int,
        network_limit: int,
    ) -> MeterOutcome:
        # The backends' shared rule; atomicity is tested on the real stores
        # (tests/test_meter_race.py).
        network = None if network_key is None else await self.distinct_reads(network_key, since)
        seen = await self.distinct_reads(reader_key, since)
        outcome = meter_outcome(seen, network, article, reader_limit, network_limit)
        if outcome.recorded:
            for key in (reader_key,) if network_key is None else (reader_key, network_key):
                await self.record_read(key, article, at)
        return outcome


def server_meter(store: DictMeterStore, network_limit: int = 5) -> ServerMeter:
    return ServerMeter(store, WINDOW, network_limit=network_limit, secret_key=SECRET)


def test_server_meter_refuses_fourth_distinct_article_for_reader() -> None:
    async def scenario() -> list[bool]:
        meter = server_meter(DictMeterStore(), network_limit=100)
        verdicts = [
            await meter.check_and_count("r" * 32, "198.51.100.7", f"/a/{i}", NOW + i)
            for i in range(4)
        ]
        assert verdicts[3].limited_by is MeterLimit.READER
        return [v.allowed for v in verdicts]

    assert asyncio.run(scenario()) == [True, True, True, False]


def test_server_meter_rereading_is_allowed_and_not_counted_again() -> None:
    async def scenario() -> None:
        store = DictMeterStore()
        meter = server_meter(store, network_limit=100)
        for i in range(3):
            await meter.check_and_count("r" * 32, None, f"/a/{i}", NOW)
        again = await meter.check_and_count("r" * 32, None, "/a/1", NOW + 5)
        assert again.allowed and not again.counted
        assert sum(len(rows) for rows in store.rows.values()) == 3

    asyncio.run(scenario())


def test_server_meter_readers_behind_one_ipv4_24_share_network_quota() -> None:
    async def scenario() -> None:
        meter = server_meter(DictMeterStore(), network_limit=4)
        # Two "readers" (e.g. one person clearing cookies) in the same /24.
        for i in range(3):
            assert (await meter.check_and_count("a" * 32, "203.0.113.10", f"/a/{i}", NOW)).allowed
        assert (await meter.check_and_count("b" * 32, "203.0.113.99", "/a/3", NOW)).allowed
        refused = await meter.check_and_count("b" * 32, "203.0.113.200", "/a/4", NOW)
        assert not refused.allowed
        assert refused.limited_by is MeterLimit.NETWORK
        assert refused.network_reads == 4
        # An article the network already read does not spend the network quota.
        assert (await meter.check_and_count("b" * 32, "203.0.113.5", "/a/0", NOW)).allowed
        # Another /24 is another network.
        assert (await meter.check_and_count("c" * 32, "203.0.114.1", "/a/9", NOW)).allowed

    asyncio.run(scenario())


def test_server_meter_ipv6_readers_share_a_48() -> None:
    async def scenario() -> None:
        meter = server_meter(DictMeterStore(), network_limit=2)
        assert (await meter.check_and_count("a" * 32, "2001:db8:1:1::1", "/a/1", NOW)).allowed
        assert (await meter.check_and_count("b" * 32, "2001:db8:1:ffff::2", "/a/2", NOW)).allowed
        refused = await meter.check_and_count("c" * 32, "2001:db8:1:2::3", "/a/3", NOW)
        assert refused.limited_by is MeterLimit.NETWORK
        other = await meter.check_and_count("c" * 32, "2001:db8:2::3", "/a/3", NOW)
        assert other.allowed

    asyncio.run(scenario())


def test_server_meter_invalid_ip_counts_reader_only() -> None:
    async def scenario() -> None:
        store = DictMeterStore()
        verdict = await server_meter(store).check_and_count("a" * 32, "not-an-ip", "/a/1", NOW)
        assert verdict.allowed and verdict.network_reads is None
        assert len(store.rows) == 1

    asyncio.run(scenario())


def test_server_meter_window_expiry_frees_the_quota() -> None:
    async def scenario() -> None:
        meter = server_meter(DictMeterStore(), network_limit=100)
        for i in range(3):
            await meter.check_and_count("a" * 32, None, f"/a/{i}", NOW)
        assert not (await meter.check_and_count("a" * 32, None, "/a/9", NOW + DAY)).allowed
        assert (await meter.check_and_count("a" * 32, None, "/a/9", NOW + 31 * DAY)).allowed

    asyncio.run(scenario())


def test_server_meter_store_holds_no_ids_addresses_or_urls() -> None:
    store = DictMeterStore()
    asyncio.run(server_meter(store).check_and_count("a" * 32, "203.0.113.10", "/a/secret", NOW))
    dumped = repr(dict(store.rows))
    for clear in ("a" * 32, "203.0.113", "/a/secret"):
        assert clear not in dumped


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("::ffff:192.0.2.77", "192.0.2.0/24"),
        ("2001:db8:abcd:1234::1", "2001:db8:abcd::/48"),
        ("fe80::1%eth0", "fe80::/48"),
        ("", None),
        (None, None),
        ("999.1.1.1", None),
    ],
)
def test_network_of_prefixes(ip: str | None, network: str | None) -> None:
    result = network_of(ip)
    assert (str(result) if result else None) == network
