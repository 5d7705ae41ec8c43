"""The consent receipt a person can read: /consentgate/consent/receipt is a page for a
browser (what was chosen, when, under which policy, the id to quote, who is
responsible), with the JSON as a download; API clients keep the JSON."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import html5lib
import httpx
import pytest
from tests.conftest import client, decide, html_app, make_gate, run

from consentgate.config import SUPPORTED_LANGUAGES
from consentgate.consent.receipt import format_when

NS = "{http://www.w3.org/1999/xhtml}"
RECEIPT = "/consentgate/consent/receipt"
CONTROLLER = {
    "name": "Harbour Media Ltd",
    "email": "dpo@harbour.test",
    "contact": "Data Protection Officer, 14 Quay Street",
    "url": "https://harbour.test/privacy",
}
PLACEHOLDER = re.compile(r"\{[^}]*\}")
# Words some languages share with English (a date written the same way, "Contact").
_SAME_WORDS = ("controller_web", "controller_contact", "policy_value", "date_format")


def _after_decision(
    tmp_path: Path, *gets: tuple[str, dict[str, str]], categories: tuple[str, ...] = ("analytics",)
) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        gate = make_gate(html_app(), tmp_path, controller=CONTROLLER)
        async with client(gate) as c:
            await decide(c, "save", list(categories))
            return [await c.get(path, headers=headers) for path, headers in gets]

    return run(scenario())


def _browser(lang: str = "en") -> dict[str, str]:
    return {"accept": "text/html,application/xhtml+xml,*/*;q=0.8", "accept-language": lang}


def _text(element: Any) -> str:
    return " ".join("".join(element.itertext()).split())


def test_receipt_page_for_a_browser(tmp_path: Path) -> None:
    (page,) = _after_decision(tmp_path, (RECEIPT, _browser()))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "no-store" in page.headers["cache-control"]
    tree = html5lib.parse(page.text)
    assert _text(tree.find(f".//{NS}h1")) == "Your consent receipt"
    facts = dict(
        zip(
            (_text(e) for e in tree.iter(f"{NS}dt")),
            (_text(e) for e in tree.iter(f"{NS}dd")),
            strict=True,
        )
    )
    receipt_id = facts["Receipt id (quote it when you contact us)"]
    assert re.fullmatch(r"[0-9a-f-]+-1", receipt_id)
    assert facts["Privacy policy"].startswith("version ")
    # The controller's contact, as configured.
    assert facts["Who is responsible"] == "Harbour Media Ltd"
    assert facts["E-mail"] == "dpo@harbour.test"
    assert facts["Contact"] == "Data Protection Officer, 14 Quay Street"
    assert facts["Website"] == "https://harbour.test/privacy"
    assert tree.find(f".//{NS}a[@href='mailto:dpo@harbour.test']") is not None
    # What was chosen, category by category.
    choices = {
        e.get("data-cg-choice"): _text(e) for e in tree.iter(f"{NS}td") if e.get("data-cg-choice")
    }
    assert choices == {
        "necessary": "Always on",
        "preferences": "Not allowed",
        "analytics": "Allowed",
        "marketing": "Not allowed",
    }
    # The JSON as a download; a way to change the choice.
    links = {e.get("href"): e for e in tree.iter(f"{NS}a")}
    assert "download" in links[f"{RECEIPT}?format=json"].attrib
    assert "/consentgate/settings" in links


def test_receipt_page_dates_are_dates_in_utc(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    (page,) = _after_decision(tmp_path, (RECEIPT, _browser()))
    after = datetime.now(UTC)
    tree = html5lib.parse(page.text)
    pairs = zip(tree.iter(f"{NS}dt"), tree.iter(f"{NS}dd"), strict=True)
    facts = {_text(dt): _text(dd) for dt, dd in pairs}
    recorded = facts["Recorded"]
    assert recorded in {format_when(before, "en"), format_when(after, "en")}
    assert recorded.endswith(" UTC") and str(before.year) in recorded
    assert before.strftime("%B") in recorded or after.strftime("%B") in recorded
    # The history table says when each choice was made, the same way (never a timestamp).
    cells = [_text(td) for td in tree.iter(f"{NS}td")]
    assert recorded in cells
    assert not re.search(r"\b1[0-9]{9}\b", page.text)


def test_receipt_page_format_when_in_each_language() -> None:
    moment = datetime(2026, 3, 5, 9, 7, tzinfo=UTC)
    assert format_when(moment, "en") == "5 March 2026, 09:07 UTC"
    assert format_when(moment, "de") == "5. März 2026, 09:07 UTC"
    assert format_when(moment, "fr") == "5 mars 2026 à 09:07 UTC"
    assert format_when(moment, "es") == "5 de marzo de 2026, 09:07 UTC"
    assert format_when(moment, "tr") == "5 Mart 2026, 09:07 UTC"
    # A time in another zone is said in UTC; a naive one is taken as UTC (the stores' way).
    from datetime import timedelta, timezone

    plus_two = datetime(2026, 3, 5, 11, 7, tzinfo=timezone(timedelta(hours=2)))
    assert format_when(plus_two, "en") == "5 March 2026, 09:07 UTC"
    assert format_when(datetime(2026, 12, 31, 23, 59), "en") == "31 December 2026, 23:59 UTC"


@pytest.mark.parametrize(
    ("lang", "title"),
    [
        ("en", "Your consent receipt"),
        ("de", "Ihre Einwilligungsquittung"),
        ("es", "Tu recibo de consentimiento"),
        ("fr", "Votre reçu de consentement"),
        ("tr", "Onay makbuzunuz"),
    ],
)
def test_receipt_page_renders_in_every_language(tmp_path: Path, lang: str, title: str) -> None:
    (page,) = _after_decision(tmp_path, (RECEIPT, _browser(lang)))
    assert page.status_code == 200
    tree = html5lib.parse(page.text)
    assert tree.get("lang") == lang
    assert _text(tree.find(f".//{NS}h1")) == title
    months = _locale(lang)["receipt"]["months"]
    recorded = [e for e in tree.iter(f"{NS}dd")][1]
    assert any(month in _text(recorded) for month in months)
    assert "{" not in page.text  # every placeholder filled


def test_receipt_page_json_download(tmp_path: Path) -> None:
    (download,) = _after_decision(tmp_path, (f"{RECEIPT}?format=json", _browser()))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;") and '.json"' in disposition
    receipt = download.json()
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["piiControllers"][0]["email"] == "dpo@harbour.test"
    assert "no-store" in download.headers["cache-control"]


@pytest.mark.parametrize(
    "accept", ["application/json", "*/*", "", "application/json, text/html;q=0.5"]
)
def test_receipt_page_api_clients_keep_the_json(tmp_path: Path, accept: str) -> None:
    (response,) = _after_decision(tmp_path, (RECEIPT, {"accept": accept}))
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].startswith("inline;")
    assert response.json()["consentReceiptID"].endswith("-1")


def test_receipt_page_same_id_as_the_json(tmp_path: Path) -> None:
    page, data = _after_decision(
        tmp_path, (RECEIPT, _browser()), (RECEIPT, {"accept": "application/json"})
    )
    tree = html5lib.parse(page.text)
    shown = [_text(e) for e in tree.iter(f"{NS}code") if "data-cg-receipt-id" in e.attrib]
    assert shown == [data.json()["consentReceiptID"]]


def test_receipt_page_without_consent_is_a_404_page(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path)) as c:
            return await c.get(RECEIPT, headers=_browser())

    response = run(scenario())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def _locale(lang: str) -> dict[str, Any]:
    text = resources.files("consentgate.i18n").joinpath("locales", f"{lang}.toml").read_text()
    return tomllib.loads(text)


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_receipt_page_texts_complete_in_every_language(lang: str) -> None:
    english, texts = _locale("en")["receipt"], _locale(lang)["receipt"]
    assert sorted(texts) == sorted(english)
    for key, value in texts.items():
        if key == "months":
            assert len(value) == 12 and len(set(value)) == 12
            continue
        assert sorted(PLACEHOLDER.findall(value)) == sorted(PLACEHOLDER.findall(english[key]))
        if lang != "en" and key not in _SAME_WORDS:
            assert value != english[key], f"{lang}.{key} is still the English text"
    assert _locale(lang)["consent"]["account_link"]


def test_receipt_page_spanish_says_tu_like_the_rest() -> None:
    from tests.test_i18n_locales import _USTED

    texts = [v for v in _locale("es")["receipt"].values() if isinstance(v, str)]
    assert [m.group(0) for text in texts for m in _USTED.finditer(text)] == []
    assert not any(word in text.split() for text in texts for word in ("su", "Su"))
