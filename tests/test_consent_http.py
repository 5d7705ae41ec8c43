"""Consent end to end through HTTP: banner, decisions, enforcement, ledger, GPC."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from tests.conftest import (
    OLD_SECRET,
    PAGE,
    SECRET,
    client,
    csrf_token,
    decide,
    html_app,
    make_gate,
    run,
    tamper_signature,
)

from consentgate.consent.state import CONSENT_COOKIE_SALT, consent_serializer

AD_COOKIE = "ad_id=xyz; Path=/; Max-Age=31536000; HttpOnly"
STATS_COOKIE = "_stats_id=1; Path=/"
PREFS_COOKIE = "text_size=large; Path=/"
SESSION_COOKIE = "session=abc; Path=/; HttpOnly"
ALL_COOKIES = [("set-cookie", c) for c in (AD_COOKIE, STATS_COOKIE, PREFS_COOKIE, SESSION_COOKIE)]


def ledger_rows(tmp_path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(tmp_path / "ledger.db")
    connection.row_factory = sqlite3.Row
    rows = [dict(r) for r in connection.execute("SELECT * FROM consent_ledger ORDER BY id")]
    connection.close()
    return rows


def set_cookie_names(response: httpx.Response) -> list[str]:
    """Names of the cookies the response stores (expiries of old cookies left out)."""
    return [
        h.split("=", 1)[0] for h in response.headers.get_list("set-cookie") if "Max-Age=0" not in h
    ]


def cookie_values(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]


# -- the banner --------------------------------------------------------------------


def test_banner_inserted_before_body_end_for_undecided_reader(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(make_gate(html_app(), tmp_path)) as c:
            response = await c.get("/")
        body = response.text
        assert 'id="consentgate-banner"' in body
        assert body.index('id="consentgate-banner"') < body.index("</body>")
        assert body.replace(body[body.index("<div") : body.index("</body>")], "", 1) != body
        assert body.startswith("<!DOCTYPE html><html><head><title>Front page</title>")
        assert int(response.headers["content-length"]) == len(response.content)
        assert "Cookie" in response.headers["vary"]
        assert response.headers["cache-control"].startswith("private")

    run(scenario())


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 64])
def test_banner_output_identical_for_any_chunking(tmp_path: Path, chunk_size: int | None) -> None:
    async def scenario() -> bytes:
        async with client(make_gate(html_app(chunk_size=chunk_size), tmp_path)) as c:
            response = await c.get("/", headers={"cookie": "cg_csrf=fixed"})
        return response.content

    whole = run(scenario_whole(tmp_path))
    assert _without_tokens(run(scenario())) == _without_tokens(whole)


async def scenario_whole(tmp_path: Path) -> bytes:
    async with client(make_gate(html_app(), tmp_path)) as c:
        response = await c.get("/", headers={"cookie": "cg_csrf=fixed"})
    return response.content


def _without_tokens(body: bytes) -> bytes:
    import re

    return re.sub(rb'value="[^"]*\.[^"]*"', b'value="TOKEN"', body)


def test_banner_absent_after_reject_and_settings_link_shown(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(make_gate(html_app(), tmp_path)) as c:
            response = await decide(c, "reject_all")
            assert response.status_code == 303
            page = await c.get("/")
        assert 'id="consentgate-banner"' not in page.text
        assert 'id="consentgate-settings-link"' in page.text

    run(scenario())


def test_banner_language_follows_accept_language(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            fr = await c.get("/", headers={"accept-language": "fr-CA,fr;q=0.9,en;q=0.5"})
            de = await c.get("/", headers={"accept-language": "de"})
        return fr.text, de.text

    fr, de = run(scenario())
    assert 'lang="fr"' in fr
    assert 'lang="de"' in de
    assert fr != de


def test_non_html_response_passes_through_untouched(tmp_path: Path) -> None:
    payload = json.dumps({"body": "</body> inside json"})

    async def scenario() -> httpx.Response:
        app = html_app(payload, content_type="application/json")
        async with client(make_gate(app, tmp_path)) as c:
            return await c.get("/api")

    response = run(scenario())
    assert response.text == payload
    assert response.headers["content-length"] == str(len(payload))
    assert "vary" not in response.headers


def test_compressed_html_passes_through_untouched(tmp_path: Path) -> None:
    async def scenario() -> tuple[str | None, bytes]:
        app = html_app(PAGE, headers=[("content-encoding", "br")])
        # The bytes as sent (httpx would try to undo "br" when brotli is installed).
        async with (
            client(make_gate(app, tmp_path)) as c,
            c.stream("GET", "/", headers={"accept-encoding": "identity"}) as r,
        ):
            return r.headers.get("content-encoding"), b"".join(
                [chunk async for chunk in r.aiter_raw()]
            )

    encoding, body = run(scenario())
    assert encoding == "br"
    assert body == PAGE.encode()


def test_head_request_does_not_announce_original_length(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.head("/")

    response = run(scenario())
    assert response.status_code == 200
    assert "content-length" not in response.headers


def test_etag_removed_and_public_cache_made_private_when_sharing_is_off(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        app = html_app(
            headers=[("etag", '"v1"'), ("cache-control", "public, s-maxage=600, max-age=60")]
        )
        async with client(make_gate(app, tmp_path, cache={"shared": False})) as c:
            return await c.get("/")

    response = run(scenario())
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "private, max-age=60"
    assert "consentgate-class" not in response.headers


def test_etag_removed_and_public_page_stays_public_for_its_class(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        app = html_app(
            headers=[("etag", '"v1"'), ("cache-control", "public, s-maxage=600, max-age=60")]
        )
        async with client(make_gate(app, tmp_path)) as c:
            return await c.get("/")

    response = run(scenario())
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "public, s-maxage=600, max-age=60"
    assert response.headers["consentgate-class"] == "u"
    assert "set-cookie" not in response.headers  # the banner minted no CSRF cookie


# -- Set-Cookie enforcement ---------------------------------------------------------


def test_set_cookie_of_ungranted_categories_dropped_for_undecided_reader(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(headers=ALL_COOKIES), tmp_path)) as c:
            return await c.get("/")

    names = set_cookie_names(run(scenario()))
    assert "session" in names
    assert not {"ad_id", "_stats_id", "text_size"} & set(names)


def test_set_cookie_kept_after_accept_all(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(headers=ALL_COOKIES), tmp_path)) as c:
            await decide(c, "accept_all")
            return await c.get("/")

    names = set_cookie_names(run(scenario()))
    assert {"ad_id", "_stats_id", "text_size", "session"} <= set(names)


def test_set_cookie_follows_saved_categories(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(headers=ALL_COOKIES), tmp_path)) as c:
            response = await decide(c, "save", ["analytics"])
            assert response.status_code == 303
            return await c.get("/")

    names = set(set_cookie_names(run(scenario())))
    assert "_stats_id" in names
    assert not {"ad_id", "text_size"} & names


@pytest.mark.parametrize(("mode", "kept"), [("block", False), ("allow", True), ("auto", False)])
def test_unknown_cookie_follows_unknown_cookies_setting(
    tmp_path: Path, mode: str, kept: bool
) -> None:
    async def scenario() -> httpx.Response:
        app = html_app(headers=[("set-cookie", "mystery=1; Path=/")])
        async with client(make_gate(app, tmp_path, unknown_cookies=mode)) as c:
            return await c.get("/")

    assert ("mystery" in set_cookie_names(run(scenario()))) is kept


def test_unknown_cookie_allowed_in_opt_out_region_by_default(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        app = html_app(headers=[("set-cookie", "mystery=1; Path=/")])
        gate = make_gate(
            app, tmp_path, regions={"country_header": "X-Country", "countries": {"US": "opt-out"}}
        )
        async with client(gate) as c:
            return await c.get("/", headers={"x-country": "US"})

    assert "mystery" in set_cookie_names(run(scenario()))


def test_withdraw_expires_cookies_of_withdrawn_categories_httponly_too(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(headers=ALL_COOKIES), tmp_path)) as c:
            await decide(c, "accept_all")
            await c.get("/")  # the browser now holds ad_id (HttpOnly) and _stats_id
            token = await csrf_token(c)
            return await c.post(
                "/consentgate/consent/withdraw", data={"csrf_token": token, "next": "/"}
            )

    response = run(scenario())
    assert response.status_code == 303
    expiries = [h for h in response.headers.get_list("set-cookie") if "Max-Age=0" in h]
    assert any(h.startswith("ad_id=;") for h in expiries)
    assert any(h.startswith("_stats_id=;") for h in expiries)
    assert not any(h.startswith("session=") for h in expiries)


def test_denied_cookies_in_request_expired_on_any_page(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get("/", headers={"cookie": "ad_id=old; session=s1; _stats_x=2"})

    response = run(scenario())
    expired = {h.split("=")[0] for h in response.headers.get_list("set-cookie") if "Max-Age=0" in h}
    assert expired == {"ad_id", "_stats_x"}


# -- consent-gated scripts and iframes ---------------------------------------------


def test_gated_script_inert_until_granted(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            before = (await c.get("/")).text
            await decide(c, "save", ["analytics"])
            after = (await c.get("/")).text
        return before, after

    before, after = run(scenario())
    assert '<script type="text/plain" data-consent="analytics" data-src="/stats.js">' in before
    assert 'src="/stats.js"' in after
    assert 'type="text/plain" data-consent="analytics"' not in after
    # marketing was not granted: the iframe keeps its inert data-src
    assert '<iframe data-consent="marketing" data-src="/video.html"' in after


def test_request_state_consent_tells_the_app(tmp_path: Path) -> None:
    async def homepage(request: Request) -> JSONResponse:
        consent = request.state.consent
        return JSONResponse({"analytics": consent.allows("analytics"), "decided": consent.decided})

    app = Starlette(routes=[Route("/", homepage)])

    async def scenario() -> tuple[Any, Any]:
        gate = make_gate(app, tmp_path)
        async with client(gate) as c:
            before = (await c.get("/")).json()
            token = await csrf_token(c)
            await c.post("/consentgate/consent", data={"action": "accept_all", "csrf_token": token})
            after = (await c.get("/")).json()
        return before, after

    before, after = run(scenario())
    assert before == {"analytics": False, "decided": False}
    assert after == {"analytics": True, "decided": True}


# -- decisions, CSRF and redirects --------------------------------------------------


def test_accept_all_records_ledger_row_and_signed_cookie(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await decide(c, "accept_all", next_url="/articles/one?x=1")

    response = run(scenario())
    assert response.status_code == 303
    assert response.headers["location"] == "/articles/one?x=1"
    consent_cookie = cookie_values(response, "cg_consent")[0]
    assert "HttpOnly" in consent_cookie
    assert "SameSite=Lax" in consent_cookie
    [row] = ledger_rows(tmp_path)
    assert row["action"] == "grant"
    assert row["method"] == "form"
    assert json.loads(row["granted"]) == ["necessary", "preferences", "analytics", "marketing"]
    assert json.loads(row["denied"]) == []
    assert len(row["banner_text_sha256"]) == 64
    assert row["ip_hmac"] and "127.0.0.1" not in row["ip_hmac"]
    assert row["policy_version"] == "1"


def test_second_decision_is_an_update_with_same_consent_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await decide(c, "accept_all")
            await decide(c, "reject_all")

    run(scenario())
    first, second = ledger_rows(tmp_path)
    assert (first["action"], second["action"]) == ("grant", "update")
    assert first["consent_id"] == second["consent_id"]
    assert json.loads(second["denied"]) == ["preferences", "analytics", "marketing"]


def test_json_decision_with_csrf_header(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            state = (await c.get("/consentgate/consent")).json()
            return await c.post(
                "/consentgate/consent",
                json={"action": "save", "categories": ["preferences"]},
                headers={"x-csrf-token": state["csrf_token"], "x-consentgate-client": "banner"},
            )

    response = run(scenario())
    assert response.status_code == 200
    assert response.json()["granted"] == ["necessary", "preferences"]
    assert ledger_rows(tmp_path)[0]["method"] == "js"


def test_consent_state_endpoint_reports_undecided_reader(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return (await c.get("/consentgate/consent")).json()  # type: ignore[no-any-return]

    state = run(scenario())
    assert state["decided"] is False
    assert state["granted"] == ["necessary"]
    assert [c["id"] for c in state["categories"]] == [
        "necessary",
        "preferences",
        "analytics",
        "marketing",
    ]


@pytest.mark.parametrize(
    ("case", "expected_error"),
    [
        ("no_cookie", "csrf_cookie_missing"),
        ("wrong_token", "csrf_token_mismatch"),
        ("no_token", "csrf_token_mismatch"),
        ("foreign_origin", "cross_origin"),
    ],
)
def test_consent_post_rejected_without_valid_csrf(
    tmp_path: Path, case: str, expected_error: str
) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            token = await csrf_token(c)
            headers = {"accept": "application/json"}
            data = {"action": "accept_all", "csrf_token": token}
            if case == "no_cookie":
                c.cookies.clear()
            elif case == "wrong_token":
                data["csrf_token"] = tamper_signature(token)
            elif case == "no_token":
                del data["csrf_token"]
            elif case == "foreign_origin":
                headers["origin"] = "https://evil.test"
            return await c.post("/consentgate/consent", data=data, headers=headers)

    response = run(scenario())
    assert response.status_code == 403
    assert response.json()["error"] == expected_error
    assert not cookie_values(response, "cg_consent")
    assert not (tmp_path / "ledger.db").exists() or not ledger_rows(tmp_path)


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"action": "maybe"}, 400, "'maybe'"),
        ({"action": "save", "categories": ["telemetry"]}, 400, "'telemetry'"),
        ({"action": "save", "categories": "analytics"}, 400, "categories"),
    ],
)
def test_consent_post_bad_input_names_the_problem(
    tmp_path: Path, payload: dict[str, Any], status: int, fragment: str
) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            token = (await c.get("/consentgate/consent")).json()["csrf_token"]
            return await c.post(
                "/consentgate/consent", json=payload, headers={"x-csrf-token": token}
            )

    response = run(scenario())
    assert response.status_code == status
    assert fragment in response.json()["message"]


def test_consent_post_bad_json_is_400(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            token = (await c.get("/consentgate/consent")).json()["csrf_token"]
            return await c.post(
                "/consentgate/consent",
                content=b"{not json",
                headers={"x-csrf-token": token, "content-type": "application/json"},
            )

    response = run(scenario())
    assert response.status_code == 400
    assert response.json()["error"] == "bad_json"


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)", "evil", ""],
)
def test_next_redirects_only_within_the_site(tmp_path: Path, next_url: str) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await decide(c, "reject_all", next_url=next_url)

    response = run(scenario())
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_consent_not_granted_when_ledger_cannot_be_written(tmp_path: Path) -> None:
    unwritable = tmp_path / "a-directory.db"
    unwritable.mkdir()

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(), tmp_path, database_url=f"sqlite:///{unwritable}")
        async with client(gate) as c:
            return await decide(c, "accept_all")

    response = run(scenario())
    assert response.status_code == 503
    assert not cookie_values(response, "cg_consent")
    assert "could not be recorded" in response.text


# -- the consent cookie -------------------------------------------------------------


def _signed_cookie(secret: str, payload: dict[str, Any]) -> str:
    return consent_serializer([secret]).dumps(payload)


def _accept_all_payload(version: str = "1", known: list[str] | None = None) -> dict[str, Any]:
    everything = ["analytics", "marketing", "necessary", "preferences"]
    return {
        "i": "0123456789abcdef0123456789abcdef",
        "g": everything,
        "k": known or everything,
        "v": version,
        "t": int(time.time()),
    }


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        _signed_cookie("another-secret-0123456789-abcdefghijklmn", _accept_all_payload()),
        _signed_cookie(SECRET, _accept_all_payload())[:-3] + "AAA",
        _signed_cookie(SECRET, {"i": "short", "g": [], "k": [], "v": "1"}),
        _signed_cookie(SECRET, ["not", "a", "mapping"]),  # type: ignore[dict-item]
    ],
    ids=["garbage", "foreign-key", "tampered", "bad-shape", "bad-type"],
)
def test_bad_consent_cookie_means_undecided_never_an_error(tmp_path: Path, cookie: str) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(headers=ALL_COOKIES), tmp_path)) as c:
            return await c.get("/", headers={"cookie": f"cg_consent={cookie}"})

    response = run(scenario())
    assert response.status_code == 200
    assert 'id="consentgate-banner"' in response.text
    assert "ad_id" not in set_cookie_names(response)


class _ThreeDaysAgoSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 3 * 86_400


def test_expired_consent_cookie_asks_again(tmp_path: Path) -> None:
    serializer = URLSafeTimedSerializer(
        [SECRET],
        salt=CONSENT_COOKIE_SALT,
        signer=_ThreeDaysAgoSigner,
        signer_kwargs={"digest_method": hashlib.sha256},
    )
    old = serializer.dumps(_accept_all_payload())

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(headers=ALL_COOKIES), tmp_path, consent_lifetime_days=1)
        async with client(gate) as c:
            return await c.get("/", headers={"cookie": f"cg_consent={old}"})

    response = run(scenario())
    assert 'id="consentgate-banner"' in response.text
    assert "ad_id" not in set_cookie_names(response)


def test_old_key_still_verifies_after_rotation(tmp_path: Path) -> None:
    cookie = _signed_cookie(OLD_SECRET, _accept_all_payload())

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(headers=ALL_COOKIES), tmp_path, secret_keys=[SECRET, OLD_SECRET])
        async with client(gate) as c:
            return await c.get("/", headers={"cookie": f"cg_consent={cookie}"})

    response = run(scenario())
    assert 'id="consentgate-banner"' not in response.text
    assert "ad_id" in set_cookie_names(response)


def test_new_policy_version_asks_again(tmp_path: Path) -> None:
    cookie = _signed_cookie(SECRET, _accept_all_payload(version="1"))

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(headers=ALL_COOKIES), tmp_path, policy={"version": "2"})
        async with client(gate) as c:
            return await c.get("/", headers={"cookie": f"cg_consent={cookie}"})

    response = run(scenario())
    assert 'id="consentgate-banner"' in response.text
    assert "ad_id" not in set_cookie_names(response)


def test_new_category_asks_again_but_keeps_earlier_grants(tmp_path: Path) -> None:
    cookie = _signed_cookie(SECRET, _accept_all_payload())
    categories = [
        {"id": "necessary", "title": "Necessary", "required": True},
        {"id": "preferences", "title": "Preferences"},
        {"id": "analytics", "title": "Analytics"},
        {"id": "marketing", "title": "Ads", "gpc": True},
        {
            "id": "personalisation",
            "title": "Recommendations",
            "description": "Suggests articles from what you read here.",
        },
    ]

    async def scenario() -> httpx.Response:
        gate = make_gate(html_app(headers=ALL_COOKIES), tmp_path, categories=categories)
        async with client(gate) as c:
            return await c.get("/", headers={"cookie": f"cg_consent={cookie}"})

    response = run(scenario())
    assert 'id="consentgate-banner"' in response.text
    assert "ad_id" in set_cookie_names(response)


# -- Global Privacy Control ---------------------------------------------------------


def test_gpc_denies_marketing_and_is_recorded_once(tmp_path: Path) -> None:
    async def scenario() -> list[httpx.Response]:
        gate = make_gate(html_app(headers=ALL_COOKIES), tmp_path, regions={"default": "opt-out"})
        async with client(gate, headers={"sec-gpc": "1", "accept": "text/html"}) as c:
            return [await c.get("/"), await c.get("/")]

    first, second = run(scenario())
    for response in (first, second):
        names = set_cookie_names(response)
        assert "ad_id" not in names
        assert "_stats_id" in names  # opt-out region: analytics on until refused
    assert cookie_values(first, "cg_consent")
    rows = ledger_rows(tmp_path)
    assert [(r["action"], r["method"]) for r in rows] == [("gpc", "gpc")]
    assert "marketing" in json.loads(rows[0]["denied"])


def test_gpc_explicit_later_choice_wins(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(
            make_gate(html_app(headers=ALL_COOKIES), tmp_path),
            headers={"sec-gpc": "1", "accept": "text/html"},
        ) as c:
            await c.get("/")  # no consent cookie yet: counted, not recorded
            await c.get("/")  # the browser's consent id: its GPC row
            await decide(c, "accept_all")
            return await c.get("/")

    assert "ad_id" in set_cookie_names(run(scenario()))
    assert [r["action"] for r in ledger_rows(tmp_path)] == ["gpc", "grant"]


def test_gpc_well_known_resource(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get("/.well-known/gpc.json")

    response = run(scenario())
    assert response.json()["gpc"] is True
    assert len(response.json()["lastUpdate"]) == 10


# -- Consent Mode, regions ----------------------------------------------------------


def test_consent_mode_default_block_first_in_head(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        gate = make_gate(html_app(), tmp_path, consent_mode={"enabled": True})
        async with client(gate) as c:
            before = (await c.get("/")).text
            await decide(c, "save", ["analytics"])
            after = (await c.get("/")).text
        return before, after

    before, after = run(scenario())
    assert before.startswith("<!DOCTYPE html><html><head><script>")
    assert "gtag('consent','default'," in before
    assert '"analytics_storage":"denied"' in before
    assert '"wait_for_update":500' in before
    assert '"analytics_storage":"granted"' in after
    assert '"ad_storage":"denied"' in after


def test_region_mode_opt_out_allows_until_refused(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        gate = make_gate(
            html_app(headers=ALL_COOKIES),
            tmp_path,
            regions={"country_header": "CF-IPCountry", "countries": {"US": "opt-out"}},
        )
        async with client(gate) as c:
            us = await c.get("/", headers={"cf-ipcountry": "US"})
            fr = await c.get("/", headers={"cf-ipcountry": "FR"})
        return us, fr

    us, fr = run(scenario())
    assert "_stats_id" in set_cookie_names(us)
    assert "_stats_id" not in set_cookie_names(fr)


# -- settings page and receipt ------------------------------------------------------


def test_settings_page_works_without_javascript(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            await decide(c, "save", ["analytics"])
            return await c.get("/consentgate/settings?next=/articles/x")

    response = run(scenario())
    assert response.status_code == 200
    assert 'action="/consentgate/consent/withdraw"' in response.text
    assert "/consentgate/consent/receipt" in response.text
    assert 'value="/articles/x"' in response.text


def test_receipt_uses_kantara_fields(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(
            make_gate(
                html_app(), tmp_path, controller={"name": "Harbour Media", "email": "dpo@h.test"}
            )
        ) as c:
            await decide(c, "save", ["analytics"])
            return await c.get("/consentgate/consent/receipt")

    receipt = run(scenario()).json()
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["piiControllers"][0]["piiController"] == "Harbour Media"
    purposes = {p["purposeCategory"][0]: p for p in receipt["services"][0]["purposes"]}
    assert len(purposes) == 4
    assert receipt["consentgate"]["inForce"] == ["analytics", "necessary"]
    assert [h["action"] for h in receipt["consentgate"]["history"]] == ["grant"]
    assert receipt["consentgate"]["history"][0]["granted"] == ["necessary", "analytics"]


def test_receipt_without_consent_is_404(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get(
                "/consentgate/consent/receipt", headers={"accept": "application/json"}
            )

    response = run(scenario())
    assert response.status_code == 404
    assert response.json()["error"] == "no_consent"


def test_static_banner_files_served_with_long_cache(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get("/consentgate/static/banner.js"), await c.get(
                "/consentgate/static/x.js"
            )

    found, missing = run(scenario())
    assert found.status_code == 200
    assert "immutable" in found.headers["cache-control"]
    assert missing.status_code == 404


# -- framework integration ----------------------------------------------------------


def test_starlette_middleware_option_with_keyword_config(tmp_path: Path) -> None:
    async def homepage(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    from consentgate import ConsentGate

    app = Starlette(
        routes=[Route("/", homepage)],
        middleware=[
            Middleware(
                ConsentGate,
                secret_keys=[SECRET],
                database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
            )
        ],
    )

    async def scenario() -> httpx.Response:
        async with client(app) as c:
            return await c.get("/")

    assert 'id="consentgate-banner"' in run(scenario()).text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "null", "sec-fetch-site": "same-origin"}, 303),  # no-referrer pages
        ({"origin": "null"}, 403),
        ({"origin": "null", "sec-fetch-site": "cross-site"}, 403),
    ],
)
def test_consent_post_origin_null_needs_same_origin_fetch_metadata(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            token = await csrf_token(c)
            data = {"action": "reject_all", "csrf_token": token, "next": "/"}
            return await c.post("/consentgate/consent", data=data, headers=headers)

    assert run(scenario()).status_code == status
