"""Accounts without HTTP: passwords, the session cookie, rate limits, the service."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from itsdangerous import URLSafeTimedSerializer

from consentgate.accounts import (
    DUMMY_HASH,
    AccountError,
    AccountErrorReason,
    Accounts,
    BackoffPolicy,
    MemoryBackoff,
    MemoryRateLimiter,
    RequestContext,
    Session,
    SessionCodec,
    SessionStore,
    hash_password,
    needs_rehash,
    normalize_email,
    password_problem,
    passwords,
    verify_password,
)
from consentgate.accounts.sessions import SESSION_SALT
from consentgate.config import Policy
from consentgate.storage import SessionRecord, SQLiteStorage, User
from consentgate.storage.records import OutgoingMail

T = TypeVar("T")

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-secret-key-0123456789-abcdefghijklmnopq"
POLICY = Policy(version="2025-01", url="/privacy", text_sha256=hashlib.sha256(b"v1").hexdigest())
NEW_POLICY = Policy(
    version="2025-06", url="/privacy", text_sha256=hashlib.sha256(b"v2").hexdigest()
)
CONTEXT = RequestContext(ip_hmac="ip-hmac", user_agent="Mozilla/5.0")
GOOD_PASSWORD = "correct horse battery"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# --- passwords ---


def test_hash_password_is_self_describing_and_salted() -> None:
    first, second = hash_password(GOOD_PASSWORD), hash_password(GOOD_PASSWORD)
    scheme, params, salt, digest = first.split("$")
    assert (scheme, params) == ("scrypt", "n=16384,r=8,p=1")
    assert len(salt) == 22 and len(digest) == 86  # 16 and 64 bytes, unpadded base64
    assert first != second


def test_verify_password_right_and_wrong() -> None:
    stored = hash_password(GOOD_PASSWORD)
    assert verify_password(GOOD_PASSWORD, stored)
    assert not verify_password("correct horse battery ", stored)
    assert not verify_password("", stored)


def test_verify_password_same_text_composed_or_decomposed_matches() -> None:
    stored = hash_password("caf\u00e9 au lait!")
    assert verify_password("cafe\u0301 au lait!", stored)


def test_verify_password_lone_surrogate_never_raises() -> None:
    stored = hash_password(GOOD_PASSWORD)
    assert not verify_password("\ud800abc", stored)
    assert verify_password("\ud800abcdefghij", hash_password("\ud800abcdefghij"))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain-text-password",
        "bcrypt$n=16384,r=8,p=1$c2FsdA$aGFzaA",
        "scrypt$n=16384,r=8$c2FsdA$aGFzaA",
        "scrypt$n=16385,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 86,  # n not a power of two
        "scrypt$n=4194304,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 86,  # n above the ceiling
        "scrypt$n=16384,r=8,p=1$!!!$" + "A" * 86,
        "scrypt$n=16384,r=8,p=1$$" + "A" * 86,
        "scrypt$n=16384,r=8,p=1$c2FsdHNhbHRzYWx0$short",
        "scrypt$n=16384,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 86 + "$extra",
    ],
)
def test_verify_password_malformed_stored_value_is_false(stored: str) -> None:
    assert verify_password(GOOD_PASSWORD, stored) is False
    assert needs_rehash(stored) is True


def test_needs_rehash_false_for_current_parameters() -> None:
    assert needs_rehash(hash_password(GOOD_PASSWORD)) is False


def test_needs_rehash_true_for_older_parameters_which_still_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "SCRYPT_N", 2**12)
    old = hash_password(GOOD_PASSWORD)
    monkeypatch.undo()
    assert old.split("$")[1] == "n=4096,r=8,p=1"
    assert verify_password(GOOD_PASSWORD, old)
    assert needs_rehash(old)


def test_dummy_hash_is_a_valid_current_hash_nobody_knows() -> None:
    assert not needs_rehash(DUMMY_HASH)
    assert not verify_password("", DUMMY_HASH)


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short", "at least 10 characters; this one has 5"),
        ("x" * 1025, "at most 1024"),
        (" " * 12, "not only spaces"),
        ("Reader@Example.com", "not your e-mail"),
    ],
)
def test_password_problem_names_what_is_wrong(password: str, fragment: str) -> None:
    problem = password_problem(password, "reader@example.com")
    assert problem is not None and fragment in problem


def test_password_problem_none_for_long_enough_password() -> None:
    assert password_problem(GOOD_PASSWORD, "reader@example.com") is None
    assert password_problem("x" * 1024, "reader@example.com") is None


def test_password_problem_minimum_is_configurable() -> None:
    problem = password_problem("twelve chars", "a@b.example", min_length=14)
    assert problem is not None and "at least 14" in problem


# --- e-mail addresses ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Reader@Example.COM ", "Reader@example.com"),
        ("first.last+news@sub.example.org", "first.last+news@sub.example.org"),
        ("leser@bücher.example", "leser@bücher.example"),
        ("a@example.com.", "a@example.com"),
    ],
)
def test_normalize_email_accepts_and_normalises(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "reader",
        "reader@",
        "@example.com",
        "a@b@example.com",
        "reader@localhost",
        "reader@1.2.3.4",
        "re ader@example.com",
        ".reader@example.com",
        "rea..der@example.com",
        "reader@-example.com",
        "reader@exa_mple.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_normalize_email_rejects_non_addresses(raw: str) -> None:
    assert normalize_email(raw) is None


# --- the session cookie ---


def test_session_codec_round_trip() -> None:
    codec = SessionCodec((SECRET,), lifetime_days=30)
    session = codec.new_session("user-1")
    loaded = codec.loads(codec.dumps(session))
    assert loaded == session
    assert loaded is not None and loaded.user_id == "user-1" and len(loaded.nonce) >= 16
    assert codec.lifetime_seconds == 30 * 86_400


def test_session_codec_each_sign_in_gets_its_own_nonce() -> None:
    codec = SessionCodec((SECRET,), lifetime_days=30)
    assert codec.new_session("u").nonce != codec.new_session("u").nonce


def test_session_codec_tampered_cookie_is_none() -> None:
    codec = SessionCodec((SECRET,), lifetime_days=30)
    ours = codec.dumps(Session("user-1", "nonce"))
    other = codec.dumps(Session("admin", "nonce"))
    _, timestamp, signature = ours.split(".")
    # Another user's payload under our timestamp and signature.
    swapped = f"{other.split('.')[0]}.{timestamp}.{signature}"
    # Flip a character in the middle of the signature: the last base64 character carries
    # padding bits that decoding ignores, so changing it may not change the signature.
    middle = len(ours) - len(signature) // 2
    flipped = ours[:middle] + ("A" if ours[middle] != "A" else "B") + ours[middle + 1 :]
    assert codec.loads(swapped) is None
    assert codec.loads(flipped) is None


@pytest.mark.parametrize("value", [None, "", "garbage", "a.b.c", "x" * 5000])
def test_session_codec_garbage_is_none(value: str | None) -> None:
    assert SessionCodec((SECRET,), lifetime_days=30).loads(value) is None


def test_session_codec_foreign_key_is_none() -> None:
    theirs = SessionCodec(("foreign-secret-key-0123456789-abcdefghij",), 30)
    assert SessionCodec((SECRET,), 30).loads(theirs.dumps(Session("user-1"))) is None


def test_session_codec_other_purpose_same_key_is_none() -> None:
    """A consent or CSRF token signed with our key is not a session."""
    other = URLSafeTimedSerializer(
        SECRET, salt="consentgate.consent.v1", signer_kwargs={"digest_method": hashlib.sha256}
    )
    assert SessionCodec((SECRET,), 30).loads(other.dumps({"u": "x", "s": "y"})) is None


def test_session_codec_expired_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec((SECRET,), lifetime_days=1)
    old = URLSafeTimedSerializer(
        SECRET, salt=SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )
    # itsdangerous stamps with time.time(): sign as if two days ago.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 2 * 86_400)
    stale = old.dumps({"u": "user-1", "s": "n"})
    monkeypatch.undo()
    assert codec.loads(stale) is None
    assert codec.loads(old.dumps({"u": "user-1", "s": "n"})) == Session("user-1", "n")


def test_session_codec_old_key_still_verifies_after_rotation() -> None:
    before = SessionCodec((OLD_SECRET,), 30).dumps(Session("user-1", "n"))
    after = SessionCodec((SECRET, OLD_SECRET), 30)
    assert after.loads(before) == Session("user-1", "n")


@pytest.mark.parametrize(
    "payload",
    [{"u": "x"}, {"u": 1, "s": "n"}, {"u": "", "s": "n"}, {"u": "x", "s": "n", "z": 1}, ["x"]],
)
def test_session_codec_wrong_payload_shape_is_none(payload: object) -> None:
    signer = URLSafeTimedSerializer(
        SECRET, salt=SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )
    assert SessionCodec((SECRET,), 30).loads(signer.dumps(payload)) is None


# --- rate limiter ---


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hits(limiter: MemoryRateLimiter, key: str, count: int, limit: int, window: int) -> list[bool]:
    async def scenario() -> list[bool]:
        return [await limiter.hit(key, limit, window) for _ in range(count)]

    return asyncio.run(scenario())


def test_rate_limiter_refuses_over_limit_per_key() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    assert hits(limiter, "a", 4, limit=3, window=60) == [True, True, True, False]
    assert hits(limiter, "b", 1, limit=3, window=60) == [True]


def test_rate_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    hits(limiter, "a", 2, limit=2, window=60)
    clock.now += 30
    assert hits(limiter, "a", 1, limit=2, window=60) == [False]
    clock.now += 30  # the first two hits are now exactly 60 s old: out of the window
    assert hits(limiter, "a", 2, limit=2, window=60) == [True, True]


def test_rate_limiter_refused_attempts_are_not_counted() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    hits(limiter, "a", 1, limit=1, window=60)
    for _ in range(5):
        clock.now += 10
        hits(limiter, "a", 1, limit=1, window=60)
    clock.now += 11  # 61 s after the only counted hit
    assert hits(limiter, "a", 1, limit=1, window=60) == [True]


def test_rate_limiter_memory_is_bounded_expired_keys_evicted_first() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(max_keys=3, clock=clock)
    hits(limiter, "old", 1, limit=1, window=10)
    clock.now += 5
    hits(limiter, "busy", 1, limit=1, window=100)
    hits(limiter, "x", 1, limit=1, window=100)
    clock.now += 10  # "old" has expired, "busy" has not
    hits(limiter, "new", 1, limit=1, window=100)
    assert len(limiter) == 3
    assert hits(limiter, "busy", 1, limit=1, window=100) == [False]


def test_rate_limiter_full_of_live_keys_evicts_least_recently_used() -> None:
    limiter = MemoryRateLimiter(max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        hits(limiter, key, 1, limit=1, window=100)
    assert len(limiter) == 2
    assert hits(limiter, "a", 1, limit=1, window=100) == [True]  # forgotten
    assert hits(limiter, "c", 1, limit=1, window=100) == [False]  # remembered


def test_rate_limiter_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryRateLimiter(max_keys=0)
    with pytest.raises(ValueError, match="at least 1"):
        hits(MemoryRateLimiter(), "a", 1, limit=0, window=10)


# --- the Accounts service ---


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def with_accounts(
    tmp_path: Path,
    body: Callable[[Accounts, SQLiteStorage], Awaitable[T]],
    policy: Policy = POLICY,
    clock: Clock | None = None,
) -> T:
    async def scenario() -> T:
        storage = SQLiteStorage(tmp_path / "accounts.db")
        accounts = Accounts(storage, (SECRET,), policy, clock=clock or Clock())
        try:
            return await body(accounts, storage)
        finally:
            await storage.close()

    return asyncio.run(scenario())


async def register(accounts: Accounts, email: str = "reader@example.com", **kw: bool) -> User:
    user = await accounts.register(
        email,
        GOOD_PASSWORD,
        accepted_policy=kw.get("accepted_policy", True),
        context=CONTEXT,
    )
    assert user is not None, f"{email} had an account already"
    return user


def test_accounts_register_stores_user_and_policy_acceptance(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> None:
        user = await register(accounts, " Reader@EXAMPLE.com ")
        assert user.email == "Reader@example.com"
        assert user.created_at == NOW
        stored = await storage.user_by_id(user.id)
        assert stored is not None and verify_password(GOOD_PASSWORD, stored.password_hash)
        rows = await storage.acceptances_for(user.id)
        assert [(r.purpose, r.granted, r.method) for r in rows] == [
            ("privacy_policy", True, "registration")
        ]
        row = rows[0]
        assert (row.policy_version, row.policy_sha256) == (POLICY.version, POLICY.text_sha256)
        assert (row.ip_hmac, row.user_agent, row.recorded_at) == ("ip-hmac", "Mozilla/5.0", NOW)

    with_accounts(tmp_path, body)


def test_accounts_register_taken_email_creates_nothing_and_mails_the_owner(
    tmp_path: Path,
) -> None:
    sent: list[tuple[str, bool]] = []

    def mail(user: User, new: bool) -> list[OutgoingMail]:
        sent.append((user.email, new))
        return [
            OutgoingMail(
                recipient=user.email, subject="s", text="t", html="<p>t</p>", kind="address_taken"
            )
        ]

    async def body(accounts: Accounts, storage: SQLiteStorage) -> tuple[User, User | None, int]:
        first = await register(accounts, "reader@example.com")
        again = await accounts.register(
            "READER@example.com", GOOD_PASSWORD, True, CONTEXT, mail=mail
        )
        counts = await storage.outbox_counts()
        return first, again, counts["pending"]

    first, again, pending = with_accounts(tmp_path, body)
    assert again is None
    # The new account's mail was built for the insert, which failed and took it along;
    # what stays queued is the one to the owner of the address.
    assert sent == [("READER@example.com", True), (first.email, False)]
    assert pending == 1


@pytest.mark.parametrize(
    ("email", "password", "accepted", "reason", "field"),
    [
        ("not-an-address", GOOD_PASSWORD, True, AccountErrorReason.EMAIL_INVALID, "email"),
        ("reader@example.com", "short", True, AccountErrorReason.PASSWORD_WEAK, "password"),
        (
            "reader@example.com",
            GOOD_PASSWORD,
            False,
            AccountErrorReason.POLICY_NOT_ACCEPTED,
            "accept_policy",
        ),
    ],
)
def test_accounts_register_invalid_input_creates_nothing(
    tmp_path: Path,
    email: str,
    password: str,
    accepted: bool,
    reason: AccountErrorReason,
    field: str,
) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> tuple[AccountError, int]:
        with pytest.raises(AccountError) as caught:
            await accounts.register(email, password, accepted, CONTEXT)
        await storage.open()
        count = sum([1 async for _ in storage.iter_acceptances()])
        return caught.value, count

    error, acceptances = with_accounts(tmp_path, body)
    assert (error.reason, error.field) == (reason, field)
    assert error.message
    assert acceptances == 0


def test_accounts_registration_problems_lists_every_field(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> list[AccountErrorReason]:
        return [p.reason for p in accounts.registration_problems("nope", "short", False)]

    assert with_accounts(tmp_path, body) == [
        AccountErrorReason.EMAIL_INVALID,
        AccountErrorReason.PASSWORD_WEAK,
        AccountErrorReason.POLICY_NOT_ACCEPTED,
    ]


def test_accounts_register_password_equal_to_email_is_weak(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> AccountError:
        with pytest.raises(AccountError) as caught:
            await accounts.register(
                "longer.reader@example.com", "Longer.Reader@example.com", True, CONTEXT
            )
        return caught.value

    error = with_accounts(tmp_path, body)
    assert error.reason is AccountErrorReason.PASSWORD_WEAK
    assert "e-mail" in error.message


def test_accounts_authenticate_right_password_returns_user(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> tuple[User, User | None]:
        user = await register(accounts)
        return user, await accounts.authenticate("READER@example.com ", GOOD_PASSWORD)

    user, found = with_accounts(tmp_path, body)
    assert found == user


def test_accounts_authenticate_unknown_email_and_wrong_password_same_result(
    tmp_path: Path,
) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> list[User | None]:
        await register(accounts)
        return [
            await accounts.authenticate("reader@example.com", "wrong password!"),
            await accounts.authenticate("nobody@example.com", GOOD_PASSWORD),
            await accounts.authenticate("not an address", GOOD_PASSWORD),
        ]

    assert with_accounts(tmp_path, body) == [None, None, None]


def test_accounts_authenticate_unknown_email_still_runs_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same work for both failures: the timing does not reveal who is registered."""
    verified: list[str] = []
    real_verify = verify_password

    def spy(password: str, stored: str) -> bool:
        verified.append(stored)
        return real_verify(password, stored)

    monkeypatch.setattr("consentgate.accounts.service.verify_password", spy)

    async def body(accounts: Accounts, storage: SQLiteStorage) -> str:
        user = await register(accounts)
        await accounts.authenticate("nobody@example.com", GOOD_PASSWORD)
        await accounts.authenticate("reader@example.com", "wrong password!")
        return user.password_hash

    real_hash = with_accounts(tmp_path, body)
    assert verified == [DUMMY_HASH, real_hash]


def test_accounts_authenticate_rehashes_outdated_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A genuine hash of the same password, made with older (cheaper) parameters.
    monkeypatch.setattr(passwords, "SCRYPT_N", 2**12)
    outdated = hash_password(GOOD_PASSWORD)
    monkeypatch.undo()

    async def body(accounts: Accounts, storage: SQLiteStorage) -> str:
        user = await register(accounts)
        await storage.update_password_hash(user.id, outdated)
        assert await accounts.authenticate(user.email, GOOD_PASSWORD) is not None
        after = await storage.user_by_id(user.id)
        assert after is not None
        return after.password_hash

    after = with_accounts(tmp_path, body)
    assert after != outdated
    assert not needs_rehash(after)
    assert verify_password(GOOD_PASSWORD, after)


def test_accounts_needs_policy_acceptance_after_version_bump(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        storage = SQLiteStorage(tmp_path / "accounts.db")
        try:
            before = Accounts(storage, (SECRET,), POLICY, clock=Clock())
            user = await register(before)
            answers = [await before.needs_policy_acceptance(user.id)]
            after = Accounts(storage, (SECRET,), NEW_POLICY, clock=Clock())
            answers.append(await after.needs_policy_acceptance(user.id))
            record = await after.record_acceptance(user.id, "re-acceptance", CONTEXT)
            assert (record.policy_version, record.policy_sha256) == (
                NEW_POLICY.version,
                NEW_POLICY.text_sha256,
            )
            answers.append(await after.needs_policy_acceptance(user.id))
            return answers
        finally:
            await storage.close()

    assert asyncio.run(scenario()) == [False, True, False]


def test_accounts_needs_policy_acceptance_without_any_row(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> bool:
        return await accounts.needs_policy_acceptance("site-user-42")

    assert with_accounts(tmp_path, body) is True


def test_accounts_record_acceptance_external_for_site_own_user_ids(tmp_path: Path) -> None:
    clock = Clock()

    async def body(accounts: Accounts, storage: SQLiteStorage) -> tuple[int | None, bool]:
        clock.now = NOW + timedelta(days=1)
        record = await accounts.record_acceptance("site-user-42", "external", CONTEXT)
        assert record.method == "external" and record.recorded_at == clock.now
        return record.id, await accounts.needs_policy_acceptance("site-user-42")

    record_id, needed = with_accounts(tmp_path, body, clock=clock)
    assert record_id == 1
    assert needed is False


def test_accounts_record_acceptance_unknown_method_raises(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> None:
        await accounts.record_acceptance("u", "withdrawal", CONTEXT)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="method"):
        with_accounts(tmp_path, body)


def test_accounts_context_hashes_the_address_and_trims_user_agent(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> RequestContext:
        return accounts.context("203.0.113.9", "A" * 600)

    context = with_accounts(tmp_path, body)
    assert context.ip_hmac is not None and "203.0.113.9" not in context.ip_hmac
    assert len(context.ip_hmac) == 64
    assert context.user_agent == "A" * 512


def test_accounts_email_key_is_keyed_and_case_insensitive(tmp_path: Path) -> None:
    async def body(accounts: Accounts, storage: SQLiteStorage) -> tuple[str, str]:
        return accounts.email_key("Reader@Example.com"), accounts.email_key(" reader@example.com")

    first, second = with_accounts(tmp_path, body)
    assert first == second
    assert "reader" not in first


def test_accounts_policy_without_text_hash_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        Accounts(SQLiteStorage(tmp_path / "x.db"), (SECRET,), Policy(version="1"))


# --- sign-in back-off ---


def test_backoff_policy_free_failures_then_doubling_up_to_the_ceiling() -> None:
    policy = BackoffPolicy(free=3, base_seconds=1, max_seconds=60)
    assert [policy.delay(n) for n in range(10)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60]
    assert policy.delay(10**9) == 60  # no overflow however many failures


@pytest.mark.parametrize(
    "kwargs",
    [{"free": 0}, {"base_seconds": 0}, {"max_seconds": 0.5}, {"forget_seconds": 10}],
)
def test_backoff_policy_bad_values_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_memory_backoff_counts_failures_forgets_after_quiet_and_on_success() -> None:
    clock = FakeClock()
    backoff = MemoryBackoff(clock=clock)
    policy = BackoffPolicy(free=1, base_seconds=10, max_seconds=100, forget_seconds=1000)

    async def scenario() -> list[float]:
        waits = [await backoff.wait_seconds("k", policy)]
        await backoff.failure("k", policy)
        waits.append(await backoff.wait_seconds("k", policy))  # 1 failure: 10 s
        clock.now += 4
        waits.append(await backoff.wait_seconds("k", policy))  # 6 s left
        await backoff.failure("k", policy)
        waits.append(await backoff.wait_seconds("k", policy))  # 20 s
        waits.append(await backoff.wait_seconds("other", policy))
        clock.now += 1000
        waits.append(await backoff.wait_seconds("k", policy))  # forgotten
        await backoff.failure("k", policy)
        await backoff.success("k")
        waits.append(await backoff.wait_seconds("k", policy))
        return waits

    assert asyncio.run(scenario()) == [0, 10, 6, 20, 0, 0, 0]


def test_memory_backoff_memory_is_bounded() -> None:
    backoff = MemoryBackoff(max_keys=2, clock=FakeClock())
    policy = BackoffPolicy(free=1)

    async def scenario() -> list[float]:
        for key in ("a", "b", "c"):
            await backoff.failure(key, policy)
        return [await backoff.wait_seconds(key, policy) for key in ("a", "c")]

    assert asyncio.run(scenario()) == [0, 1]  # "a" was the least recently failed
    assert len(backoff) == 2


# --- stored sessions ---


def test_session_store_expired_row_reads_as_signed_out(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    codec = SessionCodec((SECRET,), lifetime_days=1)

    async def scenario() -> tuple[str | None, str | None, int]:
        async with SQLiteStorage(tmp_path / "s.db") as storage:
            store = SessionStore(storage, codec, clock=lambda: now[0], cache_seconds=0)
            value = await store.start("user-1")
            fresh = await store.subject(value)
            now[0] += timedelta(days=1, seconds=1)  # the row expired (the cookie has not)
            stale = await store.subject(value)
            return fresh, stale, await storage.prune_sessions(now[0])

    assert asyncio.run(scenario()) == ("user-1", None, 1)


def test_session_store_first_sign_in_prunes_expired_rows(tmp_path: Path) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    expired = SessionRecord(
        id_hash="e" * 64,
        kind="reader",
        subject="user-0",
        created_at=now - timedelta(days=40),
        expires_at=now - timedelta(days=10),
    )

    async def scenario() -> tuple[SessionRecord | None, SessionRecord | None]:
        async with SQLiteStorage(tmp_path / "s.db") as storage:
            await storage.create_session(expired)
            before = await storage.session_by_hash(expired.id_hash)
            store = SessionStore(storage, SessionCodec((SECRET,), 30), clock=lambda: now)
            await store.start("user-1")
            return before, await storage.session_by_hash(expired.id_hash)

    assert asyncio.run(scenario()) == (expired, None)


@pytest.mark.parametrize(
    ("mode", "hours_after", "verified", "needed"),
    [
        ("grace", 71, False, False),
        ("grace", 72, False, True),
        ("grace", 500, True, False),
        ("required", 0, False, True),
        ("required", 0, True, False),
        ("off", 500, False, False),
    ],
)
def test_accounts_verification_needed_after_the_grace_or_when_required(
    tmp_path: Path, mode: str, hours_after: int, verified: bool, needed: bool
) -> None:
    from consentgate.accounts.settings import AccountsSettings

    clock = Clock()
    user = User(
        email="reader@example.com",
        password_hash="x",
        created_at=NOW,
        email_verified_at=NOW if verified else None,
    )
    settings = AccountsSettings(verification=mode, verification_grace_hours=72)  # type: ignore[arg-type]
    accounts = Accounts(SQLiteStorage(tmp_path / "unused.db"), (SECRET,), POLICY, clock=clock)
    clock.now = NOW + timedelta(hours=hours_after)
    assert accounts.verification_needed(user, settings) is needed
