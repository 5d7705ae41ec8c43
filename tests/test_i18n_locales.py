"""Texts are data (``i18n/locales/<lang>.toml``: the consent banner and pages, the wall's
call to action, the account pages), complete in every built-in language; the account
pages follow the reader's language like the banner."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import httpx
import pytest
from tests.conftest import client, html_app, make_gate, run

from consentgate.config import SUPPORTED_LANGUAGES
from consentgate.i18n import LANGUAGES, locale

PLACEHOLDER = re.compile(r"\{[^}]*\}")


def _file(lang: str) -> dict[str, dict[str, str]]:
    text = resources.files("consentgate.i18n").joinpath("locales", f"{lang}.toml").read_text()
    return tomllib.loads(text)


def test_i18n_languages_are_the_supported_ones() -> None:
    assert LANGUAGES == SUPPORTED_LANGUAGES


@pytest.mark.parametrize("part", ["consent", "wall", "accounts", "account_flows", "account_mail"])
@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_i18n_locale_complete_with_the_same_placeholders(lang: str, part: str) -> None:
    english = _file("en")[part]
    table = _file(lang)[part]
    assert sorted(table) == sorted(english)
    for key, value in table.items():
        texts = value if isinstance(value, list) else [value]
        originals = english[key] if isinstance(english[key], list) else [english[key]]
        assert len(texts) == len(originals), key
        for text, original in zip(texts, originals, strict=True):
            # ({Purposes} is {purposes} capitalised at the start of a sentence.)
            found = sorted(p.lower() for p in PLACEHOLDER.findall(text))
            assert found == sorted(p.lower() for p in PLACEHOLDER.findall(original)), key
            assert text.strip() == text and text, key
            if lang != "en" and part.startswith("account"):
                assert text != original, f"{lang}.{key} is still the English text"


def test_i18n_unknown_language_and_missing_key_fall_back_to_english() -> None:
    assert locale("xx", "accounts") == locale("en", "accounts")
    assert locale("fr", "accounts")["register_title"] == "Inscription gratuite"


@pytest.mark.parametrize(
    ("lang", "title", "button"),
    [
        ("en", "Register at no cost", "Register"),
        ("fr", "Inscription gratuite", "S’inscrire"),
        ("de", "Kostenlos registrieren", "Registrieren"),
        ("es", "Regístrate gratis", "Registrarme"),
        ("tr", "Ücretsiz kaydolun", "Kaydol"),
    ],
)
def test_i18n_register_page_in_the_readers_language(
    tmp_path: Path, lang: str, title: str, button: str
) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_gate(html_app(), tmp_path)) as c:
            headers = {"accept-language": f"{lang};q=1, en;q=0.5", "accept": "text/html"}
            return (
                await c.get("/consentgate/register", headers=headers),
                await c.get("/consentgate/login", headers=headers),
            )

    register, login = run(scenario())
    assert register.status_code == 200 and login.status_code == 200
    assert f'<html lang="{lang}">' in register.text
    assert title in register.text and f">{button}</button>" in register.text
    texts = locale(lang, "accounts")
    assert texts["login_title"] in login.text
    assert texts["email_label"] in login.text and texts["password_label"] in login.text


# The formal address (usted) in its forms that our texts could take: pronouns,
# possessives and the imperatives of the verbs the wall and the pages use.
_USTED = re.compile(
    r"\b(usted|ustedes|le da|su cuenta|sus artículos|regístrese|siga|revísela|acéptela"
    r"|guarde|tiene una cuenta|inicie|elija|confirme|compruebe|pulse)\b",
    re.IGNORECASE,
)


def test_locales_spanish_addresses_the_reader_as_tu_throughout() -> None:
    # One voice for the whole site: the pages and the banner say "tú"; a CTA in
    # "usted" beside them reads as another company's text.
    texts = [
        value
        for section in ("accounts", "consent", "wall", "account_flows", "account_mail")
        for value in _flatten(locale("es", section))
    ]
    assert len(texts) > 50  # the sections were read
    formal = sorted({m.group(0) for text in texts for m in _USTED.finditer(text)})
    assert formal == []


def _flatten(section: object) -> list[str]:
    if isinstance(section, str):
        return [section]
    if isinstance(section, Mapping):
        return [text for value in section.values() for text in _flatten(value)]
    if isinstance(section, list | tuple):
        return [text for value in section for text in _flatten(value)]
    return []
