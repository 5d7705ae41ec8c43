"""The Visitor read from a request: one pass over the raw headers, lazy fields."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from tests.conftest import html_app, make_gate

from consentgate.consent.state import decide
from consentgate.visitor import Visitor, client_address


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    return {
        "type": "http",
        "path": "/a",
        "query_string": b"",
        "headers": headers,
        "client": ("203.0.113.9", 4711),
    }


@pytest.mark.parametrize("split", [False, True])
def test_visitor_cookie_lines_are_joined(tmp_path: Path, split: bool) -> None:
    # HTTP/2 may send the Cookie header as several lines (RFC 9113 §8.2.3); the consent
    # cookie in the second line counts as if the browser had sent one line.
    gate = make_gate(html_app(), tmp_path)
    decision = decide(gate.config, None, frozenset({"analytics"}), gpc_signal=False)
    consent = f"cg_consent={gate.codec.dumps(decision)}".encode()
    lines = [b"sessionid=abc", consent] if split else [b"sessionid=abc; " + consent]
    visitor = Visitor.from_scope(_scope([(b"cookie", v) for v in lines]), gate.config, gate.codec)
    assert visitor.cookies["sessionid"] == "abc"
    assert visitor.decision == decision
    assert visitor.consent.allows("analytics")


def test_visitor_lazy_fields_match_the_request(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    scope = _scope([(b"Accept-Language", b"fr-FR,fr;q=0.9")])
    visitor = Visitor.from_scope(scope, gate.config, gate.codec)
    assert visitor.language == "fr"
    assert visitor.client_ip == client_address(scope) == "203.0.113.9"
    assert visitor.path_with_query == "/a"
    with pytest.raises(AttributeError):
        visitor.user_id = "someone"  # type: ignore[misc]


def test_visitor_reading_of_a_cookie_expires_with_the_cookie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader's cookies and consent are worked out once per Cookie header; the
    # decision's age still counts on every request, so a kept reading never outlives it.
    gate = make_gate(html_app(), tmp_path, consent_lifetime_days=1)
    decision = decide(gate.config, None, frozenset({"analytics"}), gpc_signal=False)
    scope = _scope([(b"cookie", f"cg_consent={gate.codec.dumps(decision)}".encode())])
    first = gate.visitors.read(dict(scope))
    again = gate.visitors.read(dict(scope))
    assert first.decision == again.decision == decision
    assert again.consent.allows("analytics")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 2 * 86_400)
    later = gate.visitors.read(dict(scope))
    assert later.decision is None
    assert not later.consent.decided
    assert not later.consent.allows("analytics")


def test_visitor_header_names_in_any_case_are_read(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    decision = decide(gate.config, None, frozenset({"analytics"}), gpc_signal=False)
    consent = f"cg_consent={gate.codec.dumps(decision)}".encode()
    headers = [(b"Cookie", consent), (b"SEC-GPC", b"1"), (b"Sec-Fetch-Dest", b"IFrame")]
    visitor = gate.visitors.read(_scope(headers))
    assert visitor.decision == decision
    assert visitor.gpc
    assert visitor.framed


def test_visitor_same_cookie_with_and_without_gpc_reads_each_signal(tmp_path: Path) -> None:
    # Readings are kept per (Cookie, country, GPC): one reader's signal is not another's.
    gate = make_gate(html_app(), tmp_path)
    decision = replace(
        decide(gate.config, None, frozenset({"analytics"}), gpc_signal=False), decided_at=None
    )
    cookie = (b"cookie", f"cg_consent={gate.codec.dumps(decision)}".encode())
    plain = gate.visitors.read(_scope([cookie]))
    signalled = gate.visitors.read(_scope([cookie, (b"sec-gpc", b"1")]))
    plain_again = gate.visitors.read(_scope([cookie]))
    assert not plain.gpc and signalled.gpc and not plain_again.gpc
    assert signalled.consent.gpc and not plain_again.consent.gpc
    assert plain_again.consent == plain.consent
