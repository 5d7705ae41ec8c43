"""The key ring (consentgate.keys): one place signs every cookie and token, and the values
already in readers' browsers keep verifying.

"The old way" below is how each site built its itsdangerous serializer before the ring:
the config's keys reversed (itsdangerous signs with the last), HMAC-SHA-256, and the
site's salt, written here literally so that renaming a salt fails these tests.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from tests.conftest import OLD_SECRET, SECRET, html_app, make_gate

from consentgate import ConsentGate
from consentgate.accounts.sessions import Session
from consentgate.consent.state import Decision
from consentgate.keys import Keys, Purpose
from consentgate.operator.dashboard import Dashboard
from consentgate.wall.meter import MeterState

FOREIGN_SECRET = "foreign-secret-key-0123456789-abcdefghijkl"
TOKEN_SHA = hashlib.sha256(b"admin-token-for-tests-0123456789abcdefghijklmnop").hexdigest()
BROWSER_ID = "browser-id-0123456789abcdef"
DAY = 86_400
NECESSARY = frozenset({"necessary"})


def old_serializer(salt: str, timed: bool, keys: Sequence[str]) -> URLSafeSerializer:
    kind = URLSafeTimedSerializer if timed else URLSafeSerializer
    return kind(list(reversed(keys)), salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def csrf_cookie(gate: ConsentGate) -> str:
    """A ``cg_csrf`` value naming BROWSER_ID, signed the old way with the gate's newest key."""
    return old_serializer("consentgate.csrf.v1", False, [gate.keys.newest]).dumps(BROWSER_ID)


def csrf_binding(browser_id: str) -> str:
    return hashlib.sha256(f"csrf-binding:{browser_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Site:
    """One place that signs: its salt today, a payload it accepts, how it reads and signs."""

    name: str
    salt: str
    timed: bool
    payload: Any
    accepts: Callable[[ConsentGate, str], bool]
    signs: Callable[[ConsentGate], str]

    def old_way(self, keys: Sequence[str], payload: Any = None) -> str:
        value = self.payload if payload is None else payload
        return str(old_serializer(self.salt, self.timed, keys).dumps(value))


def _admin_codec(gate: ConsentGate) -> Any:
    return Dashboard(
        gate.pages, gate.keys, gate.ledger.storage, gate.ledger.ensure_open, gate.backoff
    ).sessions.codec


SITES = [
    Site(
        "consent",
        "consentgate.consent.v1",
        True,
        {"i": "0" * 32, "g": ["necessary"], "k": ["necessary"], "v": "1", "t": 1},
        lambda gate, value: gate.codec.loads(value) is not None,
        lambda gate: gate.codec.dumps(Decision("0" * 32, NECESSARY, NECESSARY, "1", 1)),
    ),
    Site(
        "csrf-cookie",
        "consentgate.csrf.v1",
        False,
        BROWSER_ID,
        lambda gate, value: gate.pages.csrf.is_valid(value),
        lambda gate: gate.pages.csrf.new_browser_id(),
    ),
    Site(
        "csrf-token",
        "consentgate.csrf-token.v2",
        False,
        {"b": csrf_binding(BROWSER_ID)},
        lambda gate, value: gate.pages.csrf.matches(csrf_cookie(gate), value),
        lambda gate: gate.pages.csrf.token_for(csrf_cookie(gate)),
    ),
    Site(
        "session",
        "consentgate.session.v1",
        True,
        {"u": "user-1", "s": "nonce-1"},
        lambda gate, value: gate.sessions.codec.loads(value) is not None,
        lambda gate: gate.sessions.codec.dumps(Session("user-1")),
    ),
    Site(
        "meter",
        "consentgate.meter.v1",
        True,
        {"r": "0" * 32, "a": []},
        lambda gate, value: not gate.articles.meter_codec.loads(value, time.time()).tampered,
        lambda gate: gate.articles.meter_codec.dumps(MeterState.new()),
    ),
    Site(
        "admin",
        "consentgate.admin.v1",
        True,
        {"u": "admin", "s": "nonce-1"},
        lambda gate, value: _admin_codec(gate).loads(value) is not None,
        lambda gate: _admin_codec(gate).dumps(Session("admin")),
    ),
]
SITE_IDS = [site.name for site in SITES]
SITE_PAIRS = [(a, b) for a in SITES for b in SITES if a is not b]


def gate_with(tmp_path: Path, keys: Sequence[str]) -> ConsentGate:
    return make_gate(
        html_app(), tmp_path, secret_keys=list(keys), admin={"token_sha256": TOKEN_SHA}
    )


# -- the ring itself ----------------------------------------------------------------------


def test_keys_purposes_keep_todays_salts() -> None:
    # The wire format of cookies in readers' browsers: never renamed.
    assert {purpose.name: purpose.value for purpose in Purpose} == {
        "CONSENT": "consentgate.consent.v1",
        "CSRF": "consentgate.csrf.v1",
        "CSRF_TOKEN": "consentgate.csrf-token.v2",
        "SESSION": "consentgate.session.v1",
        "METER": "consentgate.meter.v1",
        "ADMIN": "consentgate.admin.v1",
        # Links in mails (accounts/links.py): in readers' mailboxes for up to their lifetime.
        "LINK_VERIFY_EMAIL": "consentgate.link.verify-email.v1",
        "LINK_SIGN_IN": "consentgate.link.sign-in.v1",
        "LINK_RESET_PASSWORD": "consentgate.link.reset-password.v1",
        "LINK_CHANGE_EMAIL": "consentgate.link.change-email.v1",
        "LINK_NEWSLETTER_CONFIRM": "consentgate.link.newsletter-confirm.v1",
        "LINK_UNSUBSCRIBE": "consentgate.link.unsubscribe.v1",
    }


def test_keys_need_a_list_of_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one secret key"):
        Keys(())
    with pytest.raises(TypeError):
        Keys(SECRET)


def test_keys_newest_is_the_first_and_repr_shows_no_key() -> None:
    ring = Keys([SECRET, OLD_SECRET])
    assert ring.newest == SECRET
    assert Keys.of(ring) is ring
    assert Keys.of([SECRET]).newest == SECRET
    assert SECRET not in repr(ring) and OLD_SECRET not in repr(ring)


@pytest.mark.parametrize("purpose", list(Purpose), ids=[p.name for p in Purpose])
def test_keys_ring_signs_exactly_as_the_old_way(purpose: Purpose) -> None:
    timed = purpose not in (Purpose.CSRF, Purpose.CSRF_TOKEN)
    ring = Keys([SECRET, OLD_SECRET])
    ours = ring.timed_serializer(purpose) if timed else ring.serializer(purpose)
    old = old_serializer(purpose.value, timed, [SECRET, OLD_SECRET])
    assert old.loads(ours.dumps({"x": 1})) == {"x": 1}
    assert ours.loads(old.dumps({"x": 1})) == {"x": 1}
    if not timed:  # no timestamp: the very same bytes
        assert ours.dumps({"x": 1}) == old.dumps({"x": 1})


@pytest.mark.parametrize("purpose", list(Purpose), ids=[p.name for p in Purpose])
def test_keys_ring_reused_signers_keep_each_key_apart(purpose: Purpose) -> None:
    # The ring keeps its signers and derived keys: after many uses, a value of the old
    # key alone still verifies, one of an unknown key still fails, and the bytes signed
    # are still the old way's.
    timed = purpose not in (Purpose.CSRF, Purpose.CSRF_TOKEN)
    ring = Keys([SECRET, OLD_SECRET])
    ours = ring.timed_serializer(purpose) if timed else ring.serializer(purpose)
    for i in range(3):
        assert ours.loads(ours.dumps({"i": i})) == {"i": i}
    only_old = old_serializer(purpose.value, timed, [OLD_SECRET])
    assert ours.loads(only_old.dumps({"x": 2})) == {"x": 2}
    stranger = old_serializer(purpose.value, timed, ["a-key-nobody-configured-0123456789"])
    with pytest.raises(BadSignature):
        ours.loads(stranger.dumps({"x": 3}))
    old = old_serializer(purpose.value, timed, [SECRET, OLD_SECRET])
    assert old.loads(ours.dumps({"x": 4})) == {"x": 4}
    if not timed:
        assert ours.dumps({"x": 4}) == old.dumps({"x": 4})


def test_keys_ring_purposes_do_not_cross() -> None:
    ring = Keys([SECRET])
    for signed in Purpose:
        value = ring.timed_serializer(signed).dumps({"x": 1})
        for other in Purpose:
            if other is not signed:
                with pytest.raises(BadSignature):
                    ring.timed_serializer(other).loads(value)


# -- every site, through the gate that builds the ring --------------------------------------


def test_keys_gate_builds_one_ring_from_the_config(tmp_path: Path) -> None:
    gate = gate_with(tmp_path, [SECRET, OLD_SECRET])
    assert isinstance(gate.keys, Keys)
    assert gate.keys.newest == SECRET


@pytest.mark.parametrize("site", SITES, ids=SITE_IDS)
def test_keys_value_signed_the_old_way_verifies_at_its_site(tmp_path: Path, site: Site) -> None:
    gate = gate_with(tmp_path, [SECRET])
    assert site.accepts(gate, site.old_way([SECRET]))


@pytest.mark.parametrize("site", SITES, ids=SITE_IDS)
def test_keys_site_signs_as_the_old_way_reads(tmp_path: Path, site: Site) -> None:
    value = site.signs(gate_with(tmp_path, [SECRET]))
    old_serializer(site.salt, site.timed, [SECRET]).loads(value)  # no BadSignature


@pytest.mark.parametrize("site", SITES, ids=SITE_IDS)
def test_keys_rotation_old_key_verifies_newest_signs(tmp_path: Path, site: Site) -> None:
    before = site.old_way([OLD_SECRET])
    (tmp_path / "before").mkdir()
    assert site.accepts(gate_with(tmp_path / "before", [OLD_SECRET]), before)
    (tmp_path / "after").mkdir()
    rotated = gate_with(tmp_path / "after", [SECRET, OLD_SECRET])
    assert site.accepts(rotated, before)
    # After the rotation the newest key signs: the new key alone verifies, the old does not.
    after = site.signs(rotated)
    old_serializer(site.salt, site.timed, [SECRET]).loads(after)
    with pytest.raises(BadSignature):
        old_serializer(site.salt, site.timed, [OLD_SECRET]).loads(after)
    # And once the old key is removed, what it signed no longer verifies.
    (tmp_path / "removed").mkdir()
    assert not site.accepts(gate_with(tmp_path / "removed", [SECRET]), before)


@pytest.mark.parametrize(
    ("signed", "reader"), SITE_PAIRS, ids=[f"{a.name}-as-{b.name}" for a, b in SITE_PAIRS]
)
def test_keys_value_of_one_purpose_is_refused_by_every_other_site(
    tmp_path: Path, signed: Site, reader: Site
) -> None:
    # The reader's own payload, same key, the other site's salt: only the salt refuses it.
    value = signed.old_way([SECRET], reader.payload)
    gate = gate_with(tmp_path, [SECRET])
    assert reader.accepts(gate, reader.old_way([SECRET]))
    assert not reader.accepts(gate, value)


def _tampered(value: str) -> list[str]:
    signature = value.rsplit(".", 1)[1]
    # The middle of the signature: its last base64 character may carry only padding bits.
    middle = len(value) - len(signature) // 2
    flipped = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    return [flipped, value[:-6], value + "x", "garbage", "a.b.c", "x" * 5000]


@pytest.mark.parametrize("site", SITES, ids=SITE_IDS)
def test_keys_tampered_or_foreign_value_is_refused_never_raised(tmp_path: Path, site: Site) -> None:
    gate = gate_with(tmp_path, [SECRET])
    for value in [*_tampered(site.old_way([SECRET])), site.old_way([FOREIGN_SECRET])]:
        assert not site.accepts(gate, value), value


def test_keys_expired_values_are_refused_as_each_site_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_with(tmp_path, [SECRET])
    by_name = {site.name: site for site in SITES}
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 400 * DAY)  # itsdangerous stamps
    stale = {name: site.old_way([SECRET]) for name, site in by_name.items() if site.timed}
    monkeypatch.undo()
    assert gate.codec.loads(stale["consent"]) is None
    assert gate.sessions.codec.loads(stale["session"]) is None
    assert _admin_codec(gate).loads(stale["admin"]) is None
    # A meter signed before the window is a new reader (keeping its id), not a tampered one.
    meter = gate.articles.meter_codec.loads(stale["meter"], time.time())
    assert meter.is_new and not meter.tampered and meter.reads == ()
    assert meter.reader_id == "0" * 32
