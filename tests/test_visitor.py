"""The Visitor read from a request: one pass over the raw headers, lazy fields."""

from __future__ import annotations

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
