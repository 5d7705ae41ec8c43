"""Size, depth and type limits on every body our endpoints read: a 400, 413 or 415 that
names the problem, never a 500, and an oversized body is not read past the limit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import html_app, make_gate, run

from consentgate import ConsentGate
from consentgate.operator.dashboard import MAX_FORM_BYTES as ADMIN_FORM_BYTES
from consentgate.web.forms import MAX_BODY_BYTES, MAX_FIELDS, MAX_JSON_DEPTH, json_depth

ADMIN_TOKEN = "admin-token-for-limits-0123456789abcdefghijkl"
CHUNK = 16 * 1024
# The endpoints that take JSON as well as a form (web/endpoints.py); the others: forms.
JSON_PATHS = {"/consentgate/consent", "/consentgate/consent/withdraw"}


def limits_gate(tmp_path: Path) -> ConsentGate:
    admin = {"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
    return make_gate(html_app(), tmp_path, admin=admin)


ONE_CLICK = "/consentgate/newsletters/unsubscribe"


def post_paths(gate: ConsentGate) -> list[str]:
    paths = sorted(path for method, path in gate.endpoints.route_keys if method == "POST")
    # The list comes from the gate's own route table; make sure it is the full one.
    assert "/consentgate/consent" in paths and "/consentgate/admin/login" in paths
    return paths


class Sent:
    """What the app sent back, and how much of the request body it asked for."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""
        self.chunks_read = 0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def call(
    gate: ConsentGate,
    path: str,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[str, str]] = (),
    *,
    method: str = "POST",
) -> Sent:
    """One request straight through ASGI, the body in ``chunks`` (no Content-Length
    unless ``headers`` has one: a chunked upload)."""
    sent = Sent()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"news.test"), *((k.encode(), v.encode()) for k, v in headers)],
        "client": ("203.0.113.7", 50000),
        "server": ("news.test", 80),
    }
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        sent.chunks_read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")

    await gate(scope, receive, send)
    return sent


def json_post(gate: ConsentGate, path: str, body: bytes) -> Sent:
    headers = [("content-type", "application/json"), ("accept", "application/json")]
    return run(call(gate, path, [body], headers))


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/consentgate/consent", "/consentgate/consent/withdraw"])
def test_input_limits_5000_deep_json_array_gives_400_without_csrf(
    tmp_path: Path, path: str
) -> None:
    sent = json_post(limits_gate(tmp_path), path, nested_array(5000))
    assert sent.status == 400
    answer = json.loads(sent.body)
    assert answer["error"] == "json_too_deep"
    assert f"at most {MAX_JSON_DEPTH} levels" in answer["message"]


def test_input_limits_json_depth_limit_is_the_documented_one(tmp_path: Path) -> None:
    gate = limits_gate(tmp_path)

    def body(depth: int) -> bytes:  # an object whose "categories" nests `depth` deep
        inner = "[" * (depth - 1) + "]" * (depth - 1)
        return f'{{"action": "save", "categories": {inner}}}'.encode()

    assert json_depth(body(MAX_JSON_DEPTH).decode()) == MAX_JSON_DEPTH
    at_limit = json.loads(json_post(gate, "/consentgate/consent", body(MAX_JSON_DEPTH)).body)
    past_limit = json.loads(json_post(gate, "/consentgate/consent", body(MAX_JSON_DEPTH + 1)).body)
    assert at_limit["error"] == "bad_json"  # parsed; the shape is wrong ("categories")
    assert past_limit["error"] == "json_too_deep"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"action": ' + b"7" * 5000 + b"}", "digits"),  # past int's 4,300-digit limit
        (b'{"action": "\xff"}', "not UTF-8"),
        (b'{"action": "accept_all"', "Expecting"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
    ids=["huge-integer", "not-utf8", "truncated", "bom"],
)
def test_input_limits_malformed_json_gives_400_naming_it(
    tmp_path: Path, body: bytes, named: str
) -> None:
    sent = json_post(limits_gate(tmp_path), "/consentgate/consent", body)
    assert sent.status == 400
    answer = json.loads(sent.body)
    assert answer["error"] == "bad_json"
    assert named in answer["message"]


def _depth_of(value: Any) -> int:
    """The oracle: nesting depth of a Python value as json.dumps writes it."""
    if isinstance(value, list):
        return 1 + max((_depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth_of(v) for v in value.values()), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ax\n'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\ax', max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_input_limits_json_depth_matches_the_value_nesting(value: Any) -> None:
    # Strings full of brackets, quotes and backslashes must not count.
    assert json_depth(json.dumps(value)) == _depth_of(value)
    assert json_depth(json.dumps(value, ensure_ascii=False, indent=1)) == _depth_of(value)


# --- size: 413, and the body is not read past the limit -----------------------------------


def test_input_limits_oversized_chunked_body_gives_413_and_stops_reading(tmp_path: Path) -> None:
    gate = limits_gate(tmp_path)
    chunks = [b"a" * CHUNK] * 640  # 10 MiB, no Content-Length
    for path in post_paths(gate):
        # Reading stops at the first chunk past the limit (the admin forms' is smaller).
        limit = ADMIN_FORM_BYTES if path.startswith("/consentgate/admin/") else MAX_BODY_BYTES
        needed = limit // CHUNK + 1
        for content_type in ("application/x-www-form-urlencoded", "application/json"):
            sent = run(call(gate, path, chunks, [("content-type", content_type)]))
            if content_type == "application/json" and path not in JSON_PATHS:
                assert sent.status == 415, (path, sent.status)  # a form only: nothing read
                assert sent.chunks_read == 0
                continue
            assert sent.status == 413, (path, content_type, sent.status, sent.text[:200])
            assert "too large" in sent.text
            assert sent.chunks_read <= needed, (path, sent.chunks_read)


def test_input_limits_declared_oversized_length_gives_413_before_reading(tmp_path: Path) -> None:
    gate = limits_gate(tmp_path)
    for path in post_paths(gate):
        headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", str(10 * 1024 * 1024)),
        ]
        sent = run(call(gate, path, [b"a" * CHUNK] * 4, headers))
        assert sent.status == 413, (path, sent.status, sent.text[:200])
        assert sent.chunks_read == 0, path


# --- type and shape -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/json5"],
)
def test_input_limits_other_content_types_give_415_naming_them(
    tmp_path: Path, content_type: str
) -> None:
    gate = limits_gate(tmp_path)
    for path in post_paths(gate):
        sent = run(call(gate, path, [b"action=accept_all"], [("content-type", content_type)]))
        if path == ONE_CLICK and content_type.startswith("multipart/form-data"):
            # RFC 8058 lets mail providers post one-click as multipart: read, and refused
            # for what it says.
            assert sent.status == 400, (path, sent.status, sent.text[:200])
            assert "List-Unsubscribe=One-Click" in sent.text
            continue
        assert sent.status == 415, (path, sent.status, sent.text[:200])
        assert content_type.split(";")[0] in sent.text


def test_input_limits_form_with_too_many_fields_gives_400(tmp_path: Path) -> None:
    gate = limits_gate(tmp_path)
    body = "&".join(f"f{n}=x" for n in range(MAX_FIELDS + 1)).encode()
    for path in post_paths(gate):
        if path.startswith("/consentgate/admin/"):
            continue  # the admin form's byte limit refuses it first (413)
        headers = [("content-type", "application/x-www-form-urlencoded")]
        sent = run(call(gate, path, [body], headers))
        assert sent.status == 400, (path, sent.status, sent.text[:200])
        assert "could not be read" in sent.text


def test_input_limits_form_not_utf8_gives_400(tmp_path: Path) -> None:
    gate = limits_gate(tmp_path)
    for path in post_paths(gate):
        headers = [("content-type", "application/x-www-form-urlencoded")]
        sent = run(call(gate, path, [b"action=\xff\xfe"], headers))
        assert sent.status == 400, (path, sent.status, sent.text[:200])
