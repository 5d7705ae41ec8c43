"""Pages shown inside another page (requested for a frame) and pages under ``exclude_paths``
get no banner and no settings link; consent is still enforced on them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import PAGE, SECRET, client, decide, html_app, make_gate, run

from consentgate import Config, ConfigError
from consentgate.consent.state import record_gpc
from consentgate.visitor import Visitor

BANNER = 'id="consentgate-banner"'
SETTINGS_LINK = 'id="consentgate-settings-link"'
AD_COOKIE = ("set-cookie", "ad_id=42; Path=/")


async def _get(c: httpx.AsyncClient, path: str, dest: str | None) -> httpx.Response:
    headers = {"accept": "text/html"}
    if dest is not None:
        headers["sec-fetch-dest"] = dest
    return await c.get(path, headers=headers)


@pytest.mark.parametrize("dest", ["iframe", "frame", "IFrame", "fencedframe"])
def test_frames_get_no_banner_but_consent_is_enforced(tmp_path: Path, dest: str) -> None:
    app = html_app(headers=[AD_COOKIE])

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(app, tmp_path)) as c:
            return await _get(c, "/embed/video", dest), await _get(c, "/", "document")

    framed, top = run(scenario())
    assert BANNER in top.text
    assert BANNER not in framed.text and SETTINGS_LINK not in framed.text
    # Nothing else changes: the gated script stays inert, the marketing cookie is dropped,
    # and no CSRF cookie is minted for a form that is not there.
    assert '<script type="text/plain" data-consent="analytics"' in framed.text
    assert framed.text.endswith("<p>Hello</p></body></html>")
    assert framed.headers.get_list("set-cookie") == []
    assert int(framed.headers["content-length"]) == len(framed.content)
    assert framed.headers["cache-control"].startswith("private")


def test_frames_decided_reader_gets_no_settings_link_in_a_frame(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            assert (await decide(c, "accept_all")).status_code == 303
            return await _get(c, "/embed/video", "iframe"), await _get(c, "/", None)

    framed, top = run(scenario())
    assert SETTINGS_LINK in top.text
    assert SETTINGS_LINK not in framed.text and BANNER not in framed.text
    # Granted: the embed's gated elements turn live as on any page.
    assert 'src="/stats.js"' in framed.text


def test_frames_vary_on_fetch_destination(tmp_path: Path) -> None:
    # The same URL differs as a page and as a frame: a browser cache must keep both apart.
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await _get(c, "/", "iframe")

    response = run(scenario())
    assert response.headers.get_list("vary") == ["Cookie, Sec-Fetch-Dest"]


@pytest.mark.parametrize(
    ("path", "banner"),
    [
        ("/embed/video", True),  # "/embed/*" needs a segment after it
        ("/embed/video/7", False),
        ("/widgets/weather", False),
        ("/widgets/weather/today", True),
        ("/news/embed/video/7", True),
        ("/", True),
    ],
)
def test_frames_exclude_paths_get_no_banner(tmp_path: Path, path: str, banner: bool) -> None:
    gate = make_gate(html_app(), tmp_path, exclude_paths=["/embed/*/**", "/widgets/*"])

    async def scenario() -> httpx.Response:
        async with client(gate) as c:
            return await _get(c, path + "?q=1", "document")

    response = run(scenario())
    assert (BANNER in response.text) is banner
    assert response.text.startswith(PAGE.split("<p>Hello")[0])


@pytest.mark.parametrize(
    ("value", "key"),
    [("/embed/**", "exclude_paths"), (["embed/**"], "exclude_paths[0]"), ([3], "exclude_paths")],
)
def test_frames_exclude_paths_checked_at_load(value: object, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping({"secret_keys": [SECRET], "exclude_paths": value})
    assert caught.value.key == key


@pytest.mark.parametrize("gpc", [True, False])
def test_frames_visitor_with_new_decision_matches_a_fresh_read(tmp_path: Path, gpc: bool) -> None:
    # The middleware no longer reads the request a second time after recording a first
    # GPC signal; what is in force must be what a fresh read with that decision gives.
    gate = make_gate(html_app(), tmp_path)
    headers = [(b"sec-gpc", b"1")] if gpc else []
    headers += [(b"sec-fetch-dest", b"iframe"), (b"accept-language", b"fr")]
    scope = {"type": "http", "path": "/a", "query_string": b"x=1", "headers": headers}
    first = Visitor.from_scope(scope, gate.config, gate.codec)
    decision = record_gpc(gate.config, first.decision)
    assert first.with_decision(gate.config, decision) == Visitor.from_scope(
        scope, gate.config, gate.codec, decision=decision
    )
