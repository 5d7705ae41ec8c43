"""``consentgate probe`` against real servers over HTTP (uvicorn on 127.0.0.1).

The demo (examples/newsroom, the wall as shipped) must come out clean. A small site
behind ConsentGate with leaks built in on purpose must not: the probe must exit 1 and
name exactly the channels that leak. The oracle for "leak" is the article text itself:
the built-in leaks send paragraphs the tests know by heart through a known channel, and
the other channels of that site go through the gate untouched.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import zlib
from collections.abc import Iterator

import httpx
import pytest
from examples.newsroom.app import create_app
from examples.newsroom.articles import all_articles
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from tests.browser_support import serve
from tests.conftest import SECRET

from consentgate import Config, ConsentGate
from consentgate.cli import main
from consentgate.operator.probe import (
    CHANNELS,
    MIN_RUN,
    PASSWORD_ENV,
    Answer,
    Channel,
    Prober,
    ProbeSettings,
    Reference,
    Verdict,
    extract_blocks,
    searchable_text,
    secret_windows,
)

pytestmark = pytest.mark.slow

PASSWORD = "harbour-light-2025-kestrel"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
ALL_CHANNELS = {"GET", *(c.name for c in CHANNELS)}
STATES = ("exhausted", "tampered", "dropped", "fresh")


def register(base_url: str, email: str) -> str:
    """Register through the site's own form, as a reader would; the session cookie."""
    with httpx.Client(base_url=base_url) as browser:
        form = browser.get("/consentgate/register")
        match = CSRF_FIELD.search(form.text)
        assert match, "the registration page has no CSRF token"
        answer = browser.post(
            "/consentgate/register",
            data={
                "csrf_token": match.group(1),
                "email": email,
                "password": PASSWORD,
                "accept_policy": "on",
                "next": "/",
            },
        )
        assert answer.status_code == 200, answer.text[:300]  # "look in your inbox"
        # Unverified, the reader signs in with the password (the grace period).
        form = browser.get("/consentgate/login")
        match = CSRF_FIELD.search(form.text)
        assert match, "the sign-in page has no CSRF token"
        answer = browser.post(
            "/consentgate/login",
            data={"csrf_token": match.group(1), "email": email, "password": PASSWORD, "next": "/"},
        )
        assert answer.status_code == 303, answer.text[:300]
        return str(browser.cookies["cg_session"])


def table_rows(output: str) -> list[tuple[str, str, str, str]]:
    """(path, state, channel, verdict) of every table row the probe printed."""
    rows = []
    path = ""
    pattern = re.compile(
        r"^  (\S+)\s{2,}(.+?)\s{2,}(\d+|-)\s{2,}(\d+|-)\s{2,}(ok|LEAK|NOT WALLED|free read|"
        r"UNCHECKED|ERROR)\b"
    )
    for line in output.splitlines():
        if line.startswith("/"):
            path = line.split()[0]
            continue
        match = pattern.match(line)
        if match:
            rows.append((path, match.group(1), match.group(2).strip(), match.group(5)))
    return rows


def free_port_without_server() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the demo ----------------------------------------------------------------------------------

METERED = "fishing-quota"
REGISTERED_ONLY = "local-election-explainer"
SPEND = ("harbour-dredging-vote", "ferry-timetable-change", "school-robotics-team")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(create_app(tmp_path_factory.mktemp("probe-demo"))) as base_url:
        register(base_url, "probe-reader@example.com")
        yield base_url


def demo_args(base_url: str, *paths: str) -> list[str]:
    args = ["probe", base_url, *(f"/articles/{p}" for p in paths)]
    for spend in SPEND:
        args += ["--spend", f"/articles/{spend}"]
    return [*args, "--email", "probe-reader@example.com"]


def test_probe_demo_passes_every_channel(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    status = main(demo_args(demo, METERED, REGISTERED_ONLY))
    out = capsys.readouterr().out
    assert status == 0, out
    rows = table_rows(out)
    by_path: dict[str, dict[str, set[str]]] = {}
    for path, state, channel, verdict in rows:
        by_path.setdefault(path, {}).setdefault(state, set()).add(channel)
        assert verdict in ("ok", "free read"), (path, state, channel, verdict)
    # Metered: the meter-spending readers are judged on every channel; a reader without
    # a meter cookie reads it free, as the wall promises (the cookie meter starts again).
    metered = by_path[f"/articles/{METERED}"]
    assert metered["exhausted"] == ALL_CHANNELS
    assert metered["tampered"] == ALL_CHANNELS
    assert ("/articles/" + METERED, "fresh", "GET", "free read") in rows
    # Registration-only: every anonymous reader is walled, on every channel.
    walled = by_path[f"/articles/{REGISTERED_ONLY}"]
    assert {state: walled[state] for state in STATES} == dict.fromkeys(STATES, ALL_CHANNELS)
    # The comparison had something to find: the paragraphs after the lead.
    article = next(a for a in all_articles() if a.slug == REGISTERED_ONLY)
    hidden = re.search(rf"^/articles/{REGISTERED_ONLY} .*?(\d+) hidden from", out, re.M)
    assert hidden and int(hidden.group(1)) >= len(article.paragraphs) - 2


def test_probe_demo_free_article_is_reported_not_walled(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    status = main(demo_args(demo, "library-reopening"))
    out = capsys.readouterr().out
    assert status == 1
    assert ("/articles/library-reopening", "exhausted", "GET", "NOT WALLED") in table_rows(out)


def test_probe_demo_wrong_password_is_a_usage_error(
    demo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password-at-all")
    status = main(demo_args(demo, METERED))
    err = capsys.readouterr().err
    assert status == 2
    assert "refused the sign-in" in err and "Traceback" not in err


def test_probe_no_server_is_a_connection_error(capsys: pytest.CaptureFixture[str]) -> None:
    base = f"http://127.0.0.1:{free_port_without_server()}"
    status = main(["probe", base, "/articles/x", "--session-cookie", "abc", "--timeout", "2"])
    err = capsys.readouterr().err
    assert status == 2
    assert "connection refused" in err and "Traceback" not in err


def test_probe_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "http://127.0.0.1:9"]) == 2  # no path
    assert main(["probe", "ftp://example.test", "/a", "--session-cookie", "x"]) == 2
    assert main(["probe", "http://127.0.0.1:9", "no-slash", "--session-cookie", "x"]) == 2
    assert main(["probe", "http://127.0.0.1:9", "/a", "--timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "not an http(s) URL" in err and "starts with '/'" in err
    assert "Traceback" not in err


# -- a site that leaks on purpose ----------------------------------------------------------------

LEAD = [
    "The harbour board met on Tuesday evening to discuss the winter dredging plan again.",
    "Members heard that silt in the channel had risen by a third since the spring survey.",
]
HIDDEN = [
    "A contractor from the north coast has offered to start in November for a fixed price.",
    "Three members asked whether the fishing fleet would be paid for the days it loses.",
    "The chair said a decision would be taken at the next meeting, after a public hearing.",
    "Residents of the Spit will be asked about the noise of night work before any contract.",
]
# Long enough that the full page outweighs the cut one with its CTA and banner.
HIDDEN += [
    f"Item {i} of the minutes records how member {i} voted on motion {i * 7}." for i in range(120)
]
SLUG = "/articles/dredging"


def article_html() -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in LEAD + HIDDEN)
    return (
        "<!DOCTYPE html><html><head><title>Dredging</title></head><body>"
        f'<article><h1>Dredging, again</h1><div class="article-body">{paragraphs}</div>'
        "</article></body></html>"
    )


def leaking_site() -> Starlette:
    """Walled by its own header on the normal page; five answers forget the header.

    * HEAD is answered by another handler: the full page's length, as text/plain;
    * a suffix range (``bytes=-N``) is served from the full page;
    * ``Accept: application/json`` gets an API answer with the whole text;
    * a Googlebot user agent gets the full page (cloaking, with no proof of the bot);
    * ``Accept-Encoding`` with gzip gets the full page pre-compressed by the app.

    ConsentGate sees no access header on those, so it treats them as free pages.
    """

    async def article(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        agent = request.headers.get("user-agent", "")
        encodings = request.headers.get("accept-encoding", "")
        suffix = re.fullmatch(r"bytes=-(\d+)", request.headers.get("range", ""))
        full = article_html().encode()
        if request.method == "HEAD":  # another handler: the full length, a wrong type
            return Response(full, media_type="text/plain; charset=utf-8")
        if suffix:
            start = max(0, len(full) - int(suffix.group(1)))
            content_range = f"bytes {start}-{len(full) - 1}/{len(full)}"
            return Response(
                full[start:],
                status_code=206,
                media_type="text/html; charset=utf-8",
                headers={"content-range": content_range},
            )
        if accept.startswith("application/json"):
            return JSONResponse({"headline": "Dredging, again", "body": LEAD + HIDDEN})
        if "Googlebot" in agent:
            return HTMLResponse(article_html())
        if "gzip" in encodings:
            return Response(
                gzip.compress(article_html().encode()),
                media_type="text/html; charset=utf-8",
                headers={"content-encoding": "gzip", "vary": "Accept-Encoding"},
            )
        return HTMLResponse(article_html(), headers={"consentgate-access": "registered"})

    return Starlette(routes=[Route(SLUG, article, methods=["GET", "HEAD"])])


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("probe-leaky")
    config = Config.from_mapping(
        {
            "secret_keys": [SECRET],
            "database_url": f"sqlite:///{data / 'ledger.db'}",
            "wall": {"article_selector": "div.article-body", "lead_paragraphs": 2},
        }
    )
    with serve(ConsentGate(leaking_site(), config=config)) as base_url:
        yield base_url, register(base_url, "leak-reader@example.com")


def test_probe_leaking_site_names_the_leaking_channels(
    leaky: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, session = leaky
    status = main(["probe", base_url, SLUG, "--session-cookie", f"cg_session={session}"])
    out = capsys.readouterr().out
    assert status == 1, out
    rows = table_rows(out)
    leaking = {(state, channel) for _, state, channel, verdict in rows if verdict == "LEAK"}
    # No meter on this site, so no meter cookie to tamper with; the others are walled
    # (registration-only), so each of them shows every leak.
    states = {state for _, state, _, _ in rows}
    assert "tampered" not in states and {"exhausted", "fresh"} <= states
    expected_channels = {
        "HEAD",
        "range tail",
        "accept json",
        "ua googlebot",
        "googlebot spoofed",
        "encoding gzip",
        "encoding all",
    }
    assert leaking == {(s, c) for s in states for c in expected_channels}
    others = {(s, c) for _, s, c, v in rows if v == "ok"}
    assert others == {(s, c) for s in states for c in ALL_CHANNELS - expected_channels}
    assert "LEAK:" in out.splitlines()[-1]


# -- the text comparison on its own ----------------------------------------------------------------


def test_probe_text_finds_hidden_runs_in_json_ld_and_entities() -> None:
    page = article_html()
    blocks = [b for b in extract_blocks(page) if b in HIDDEN]
    assert blocks == HIDDEN
    public = searchable_text("<div class='article-body'>" + "".join(f"<p>{p}</p>" for p in LEAD))
    secrets = secret_windows(blocks, public)
    run = HIDDEN[2][5 : 5 + MIN_RUN]  # any run of MIN_RUN characters must be caught
    as_json_ld = json.dumps({"@type": "NewsArticle", "articleBody": f"<p>{run}</p>"})
    carriers = {
        "json-ld": f'<script type="application/ld+json">{as_json_ld}</script>',
        "entities": "<p>" + run.replace(" ", "&#32;").replace("a", "&#x61;") + "</p>",
        "comment": f"<!-- {run} -->",
        "attribute": f'<meta name="description" content="{run}">',
        "split by markup": "<p>" + run[:10] + "<em>" + run[10:] + "</em></p>",
    }
    for name, markup in carriers.items():
        haystack = searchable_text(markup)
        assert any(s in haystack for s in secrets), name
    # The lead itself, and runs shorter than a window, are not secrets.
    assert not any(s in searchable_text(public) for s in secrets)
    short = HIDDEN[2][:20]
    assert not any(s in searchable_text(f"<p>{short}</p>") for s in secrets)


def test_probe_text_json_body_is_searched() -> None:
    body = json.dumps({"data": {"items": [{"html": "<p>" + HIDDEN[0] + "</p>"}]}})
    secrets = secret_windows(HIDDEN, searchable_text("<p>unrelated</p>"))
    assert any(s in searchable_text(body, as_json=True) for s in secrets)


def judge_setup() -> tuple[Prober, Reference, bytes]:
    """A prober (no request is made) and the reference of the leaking site's article."""
    prober = Prober(ProbeSettings("http://127.0.0.1:9", (SLUG,), session_cookie="x"))
    full = article_html().encode()
    registered = Answer(200, [("etag", '"full-v1"'), ("content-type", "text/html")], full)
    lead = "".join(f"<p>{p}</p>" for p in LEAD).encode()
    secrets = secret_windows(HIDDEN, searchable_text(lead.decode()))
    return prober, Reference(registered, secrets, HIDDEN, len(full) - len(lead)), lead


def channel(name: str) -> Channel:
    return next(c for c in CHANNELS if c.name == name)


def test_probe_judge_304_validating_the_registered_etag_is_a_leak() -> None:
    prober, ref, lead = judge_setup()
    revalidated = Answer(304, [("etag", '"full-v1"')], b"")
    assert prober.judge(revalidated, ref, channel("if-none-match"), len(lead))[0] is Verdict.LEAK
    # If-Modified-Since names no copy: a 304 there says nothing about the full one.
    assert prober.judge(revalidated, ref, channel("if-modified-since"), len(lead))[0] is Verdict.OK


def test_probe_judge_lengths_that_give_away_the_full_copy_are_leaks() -> None:
    prober, ref, lead = judge_setup()
    full_length = len(ref.answer.body)
    head = Answer(200, [("content-length", str(full_length))], b"")
    assert prober.judge(head, ref, channel("HEAD"), len(lead))[0] is Verdict.LEAK
    honest = Answer(200, [("content-length", str(len(lead)))], b"")
    assert prober.judge(honest, ref, channel("HEAD"), len(lead))[0] is Verdict.OK
    part = Answer(206, [("content-range", f"bytes 0-9/{full_length}")], lead[:10])
    assert prober.judge(part, ref, channel("range 0-"), len(lead))[0] is Verdict.LEAK
    part = Answer(206, [("content-range", f"bytes 0-9/{len(lead)}")], lead[:10])
    assert prober.judge(part, ref, channel("range 0-"), len(lead))[0] is Verdict.OK


def test_probe_judge_decodes_coding_lists_and_flags_what_it_cannot_read() -> None:
    prober, ref, lead = judge_setup()
    body = zlib.compress(gzip.compress(article_html().encode()))
    coded = Answer(200, [("content-encoding", "identity, gzip, deflate")], body)
    verdict, note = prober.judge(coded, ref, channel("encoding all"), len(lead))
    assert verdict is Verdict.LEAK, note
    unknown = Answer(200, [("content-encoding", "x-unheard-of")], b"\x00\x01")
    assert prober.judge(unknown, ref, channel("encoding all"), len(lead))[0] is Verdict.UNCHECKED
    broken = Answer(200, [("content-encoding", "gzip")], b"not gzip at all")
    assert prober.judge(broken, ref, channel("encoding gzip"), len(lead))[0] is Verdict.UNCHECKED
