"""Listing ``[[categories]]`` keeps what the built-in ids have (texts in every language, GPC,
Consent Mode signals); a category of the site's own must bring its texts, and can have
them translated like the built-in ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import SECRET, client, html_app, make_gate, run

from consentgate import Config, ConfigError

LISTED = [
    {"id": "necessary"},
    {"id": "analytics"},
    {"id": "marketing"},
]


def _config(**options: Any) -> Config:
    return Config.from_mapping({"secret_keys": [SECRET], **options})


def test_categories_listed_bare_keep_the_builtin_settings() -> None:
    builtin = {c.id: c for c in _config().categories}
    listed = {c.id: c for c in _config(categories=LISTED).categories}
    assert list(listed) == ["necessary", "analytics", "marketing"]
    for category_id, category in listed.items():
        assert category == builtin[category_id]
    # The two that mattered most: GPC still denies advertising, and the Consent Mode
    # signals still follow the categories (both were lost when a table listed them).
    assert listed["marketing"].gpc is True
    assert listed["analytics"].consent_mode == ("analytics_storage",)
    assert listed["necessary"].required is True


def test_categories_listed_bare_keep_their_translations(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path, categories=LISTED, cookies=[])) as c:
            french = await c.get("/", headers={"accept-language": "fr"})
            german = await c.get("/", headers={"accept-language": "de"})
            return french, german

    french, german = run(scenario())
    assert "Mesure d’audience" in french.text and "Publicité" in french.text
    assert "Reichweitenmessung" in german.text and "Werbung" in german.text
    assert "Audience measurement" not in french.text + german.text
    assert "Preferences" not in french.text  # not listed: not offered


def test_categories_listed_with_own_wording_use_it(tmp_path: Path) -> None:
    listed = [{"id": "necessary"}, {"id": "analytics", "title": "Counting readers"}]

    async def scenario() -> httpx.Response:
        async with client(make_gate(html_app(), tmp_path, categories=listed, cookies=[])) as c:
            return await c.get("/", headers={"accept-language": "fr"})

    response = run(scenario())
    assert "Counting readers" in response.text
    assert "Mesure d’audience" not in response.text
    # The description was not re-worded: its built-in translation stays.
    assert "Comptent les visites et mesurent quels articles sont lus" in response.text


@pytest.mark.parametrize("missing", ["title", "description"])
def test_categories_own_id_needs_its_texts(missing: str) -> None:
    own = {"id": "newsletter", "title": "Newsletter", "description": "Tracks opened mail."}
    del own[missing]
    with pytest.raises(ConfigError) as caught:
        _config(categories=[{"id": "necessary"}, own])
    assert caught.value.key == f"categories[1].{missing}"
    assert "newsletter" in caught.value.reason


def test_categories_own_id_translated_in_texts(tmp_path: Path) -> None:
    listed = [
        {"id": "necessary"},
        {"id": "newsletter", "title": "Newsletter", "description": "Counts opened letters."},
    ]
    texts = {
        "fr": {
            "category.newsletter.title": "Lettre d’information",
            "category.newsletter.description": "Compte les lettres ouvertes.",
        }
    }

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        gate = make_gate(html_app(), tmp_path, categories=listed, texts=texts, cookies=[])
        async with client(gate) as c:
            french = await c.get("/", headers={"accept-language": "fr"})
            english = await c.get("/", headers={"accept-language": "en"})
            return french, english

    french, english = run(scenario())
    assert "Lettre d’information" in french.text and "Compte les lettres" in french.text
    assert "Counts opened letters." in english.text and "Lettre" not in english.text


def test_categories_texts_for_an_unlisted_category_refused() -> None:
    texts = {"fr": {"category.newsleter.title": "Lettre"}}
    listed = [
        {"id": "necessary"},
        {"id": "newsletter", "title": "Newsletter", "description": "Counts opened letters."},
    ]
    with pytest.raises(ConfigError) as caught:
        _config(categories=listed, texts=texts)
    assert caught.value.key == "texts.fr.category.newsleter.title"
    assert "did you mean 'category.newsletter.title'" in caught.value.reason
