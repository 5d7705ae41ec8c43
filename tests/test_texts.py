"""Built-in texts, overrides, language negotiation and the banner fingerprint."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from consentgate.config import SUPPORTED_LANGUAGES, Category, RegionMode, default_categories
from consentgate.consent.texts import (
    BUILTIN_TEXTS,
    TEXT_KEYS,
    banner_intro,
    banner_text_sha256,
    category_text,
    negotiate_language,
    resolve_texts,
)

AVAILABLE = ("en", "fr", "de", "es", "tr")


# -- built-in texts ---------------------------------------------------------------


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_builtin_texts_every_language_has_every_key(lang: str) -> None:
    table = BUILTIN_TEXTS[lang]
    assert set(table) == TEXT_KEYS
    for key in TEXT_KEYS:
        assert table[key].strip(), f"{lang}.{key} is empty"


def test_builtin_texts_cover_default_categories() -> None:
    for category in default_categories():
        assert f"category.{category.id}.title" in TEXT_KEYS
        assert f"category.{category.id}.description" in TEXT_KEYS


def test_builtin_texts_english_categories_match_config_defaults() -> None:
    for category in default_categories():
        assert BUILTIN_TEXTS["en"][f"category.{category.id}.title"] == category.title
        assert BUILTIN_TEXTS["en"][f"category.{category.id}.description"] == category.description
        assert BUILTIN_TEXTS["en"][f"category.{category.id}.purpose"] == category.purpose


@pytest.mark.parametrize("lang", ["fr", "de", "es", "tr"])
def test_builtin_texts_translations_differ_from_english(lang: str) -> None:
    same = [k for k in TEXT_KEYS if BUILTIN_TEXTS[lang][k] == BUILTIN_TEXTS["en"][k]]
    # Only words that are spelled the same in both languages may coincide.
    assert set(same) <= {"history_when", "history_action", "policy_version"}


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_builtin_texts_only_known_placeholder(lang: str) -> None:
    for key, text in BUILTIN_TEXTS[lang].items():
        placeholders = set(re.findall(r"\{[^}]*\}", text))
        expected = set()
        if key == "policy_version":
            expected = {"{version}"}
        elif key in ("intro", "intro_opt_out", "intro_notice"):
            # Where the configured purposes go, capitalised at a sentence's start.
            expected = {"{Purposes}"} if text.startswith("{Purposes}") else {"{purposes}"}
        assert placeholders == expected, (lang, key)


def test_builtin_texts_required_wording_present() -> None:
    en = BUILTIN_TEXTS["en"]
    assert en["error_storage"] == (
        "Your choice could not be recorded, so nothing was turned on. Please try again."
    )
    assert "Global Privacy Control" in en["gpc_note"]
    assert "Cookie settings" in en["intro"]
    assert en["settings_link"] == "Cookie settings"


# -- resolve_texts ----------------------------------------------------------------


def test_resolve_texts_without_overrides_is_builtin() -> None:
    assert dict(resolve_texts("de", {})) == dict(BUILTIN_TEXTS["de"])


def test_resolve_texts_overrides_applied_for_that_language_only() -> None:
    overrides = {"fr": {"accept_all": "J’accepte tout"}}
    fr = resolve_texts("fr", overrides)
    de = resolve_texts("de", overrides)
    assert fr["accept_all"] == "J’accepte tout"
    assert fr["reject_all"] == BUILTIN_TEXTS["fr"]["reject_all"]
    assert de["accept_all"] == BUILTIN_TEXTS["de"]["accept_all"]


def test_resolve_texts_unknown_language_falls_back_to_english() -> None:
    assert resolve_texts("xx", {})["title"] == BUILTIN_TEXTS["en"]["title"]


def test_resolve_texts_repeated_calls_cached() -> None:
    overrides = {"en": {"title": "Cookies"}}
    assert resolve_texts("en", overrides) is resolve_texts("en", {"en": {"title": "Cookies"}})


def test_resolve_texts_result_immutable() -> None:
    texts = resolve_texts("en", {})
    with pytest.raises(TypeError):
        texts["title"] = "x"  # type: ignore[index]


# -- category_text ----------------------------------------------------------------


def test_category_text_default_category_translated() -> None:
    analytics = default_categories()[2]
    title, description = category_text(resolve_texts("fr", {}), analytics)
    assert title == BUILTIN_TEXTS["fr"]["category.analytics.title"]
    assert description == BUILTIN_TEXTS["fr"]["category.analytics.description"]


def test_category_text_custom_category_keeps_configured_wording() -> None:
    video = Category("video", "Video players", "Embedded videos from a host.")
    assert category_text(resolve_texts("de", {}), video) == (
        "Video players",
        "Embedded videos from a host.",
    )


def test_category_text_reworded_default_keeps_operator_wording() -> None:
    analytics = replace(default_categories()[2], title="Statistics")
    title, description = category_text(resolve_texts("fr", {}), analytics)
    assert title == "Statistics"
    assert description == BUILTIN_TEXTS["fr"]["category.analytics.description"]


def test_category_text_override_wins_over_configured_wording() -> None:
    analytics = replace(default_categories()[2], title="Statistics")
    texts = resolve_texts("fr", {"fr": {"category.analytics.title": "Statistiques"}})
    assert category_text(texts, analytics)[0] == "Statistiques"


def test_category_text_plain_mapping_detects_override() -> None:
    analytics = replace(default_categories()[2], title="Statistics")
    texts = dict(BUILTIN_TEXTS["es"])
    assert category_text(texts, analytics)[0] == "Statistics"
    texts["category.analytics.title"] = "Estadísticas"
    assert category_text(texts, analytics)[0] == "Estadísticas"


# -- negotiate_language -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr", "fr"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-CA", "fr"),
        ("FR-ca", "fr"),
        ("en;q=0.5, tr;q=0.9", "tr"),
        ("en;q=0.5, es", "es"),
        ("pt-BR, es;q=0.4", "es"),
        ("ja, zh", "en"),
        ("*", "en"),
        ("en;q=0, *", "fr"),
        ("en;q=0, fr;q=0, *;q=0.5", "de"),
        ("de;q=0", "en"),
        ("fr;q=0.8, de;q=0.8", "fr"),
        ("de;q=0.800, fr;q=0.8", "de"),
        ("es;level=1;q=0.9, fr;q=0.5", "es"),
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
    ],
)
def test_negotiate_language_cases(header: str, expected: str) -> None:
    assert negotiate_language(header, AVAILABLE, "en") == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        ",,,;;;",
        "q=1",
        "fr;q=2",
        "fr;q=abc",
        "fr;q=0.1234",
        "fr;q=",
        "12345",
        "ünïcödé",
        "a" * 10_000,
        ";q=0.5" * 5000,
        "\x00\x01",
    ],
)
def test_negotiate_language_garbage_returns_default(header: str | None) -> None:
    assert negotiate_language(header, AVAILABLE, "en") == "en"


def test_negotiate_language_malformed_element_skipped_rest_used() -> None:
    assert negotiate_language("fr;q=oops, de;q=0.3", AVAILABLE, "en") == "de"


def test_negotiate_language_empty_available_returns_default() -> None:
    assert negotiate_language("fr", (), "en") == "en"


def test_negotiate_language_regional_available_matched_by_primary() -> None:
    assert negotiate_language("pt", ("en", "pt-BR"), "en") == "pt-BR"


def test_negotiate_language_exact_regional_preferred() -> None:
    assert negotiate_language("pt-PT", ("pt-BR", "pt-PT"), "en") == "pt-PT"


# -- banner_text_sha256 -----------------------------------------------------------


def _hash(**changes: object) -> str:
    texts = changes.pop("texts", resolve_texts("en", {}))
    categories = changes.pop("categories", default_categories())
    version = changes.pop("policy_version", "1")
    return banner_text_sha256(texts, categories, version, **changes)  # type: ignore[arg-type]


def test_banner_hash_stable() -> None:
    first = _hash()
    assert first == _hash()
    assert first == _hash(texts=dict(resolve_texts("en", {})))
    assert re.fullmatch(r"[0-9a-f]{64}", first)


@pytest.mark.parametrize(
    "key",
    ["title", "intro", "accept_all", "reject_all", "customise", "save_choices", "always_on"],
)
def test_banner_hash_changes_when_shown_text_changes(key: str) -> None:
    assert _hash() != _hash(texts=resolve_texts("en", {"en": {key: "Changed"}}))


def test_banner_hash_ignores_text_not_shown_in_banner() -> None:
    assert _hash() == _hash(texts=resolve_texts("en", {"en": {"withdraw": "Changed"}}))


def test_banner_hash_changes_when_category_changes() -> None:
    base = default_categories()
    reworded = (*base[:3], replace(base[3], description="Something else."))
    assert _hash() != _hash(categories=reworded)
    assert _hash() != _hash(categories=base[:3])
    assert _hash() != _hash(categories=(base[0], base[2], base[1], base[3]))


def test_banner_hash_changes_when_policy_version_changes() -> None:
    assert _hash() != _hash(policy_version="2")


def test_banner_hash_changes_with_language() -> None:
    assert _hash() != _hash(texts=resolve_texts("fr", {}))


def test_banner_hash_depends_on_mode_and_gpc_note() -> None:
    assert _hash() != _hash(mode="opt-out")
    assert _hash() != _hash(gpc=True)


# -- the intro names the configured purposes -------------------------------------------


def _intro(lang: str, categories: list[Category], mode: RegionMode = "opt-in") -> str:
    return banner_intro(resolve_texts(lang, {}), categories, mode)


def _builtin(*ids: str) -> list[Category]:
    return [c for c in default_categories() if c.id in ids]


@pytest.mark.parametrize(
    ("lang", "advertising"),
    [
        ("en", "advertising"),
        ("fr", "publicité"),
        ("de", "Werbung"),
        ("es", "publicidad"),
        ("tr", "reklam"),
    ],
)
def test_banner_intro_without_marketing_never_speaks_of_advertising(
    lang: str, advertising: str
) -> None:
    everything = _builtin("necessary", "preferences", "analytics", "marketing")
    no_ads = _builtin("necessary", "preferences", "analytics")
    for mode in ("opt-in", "opt-out", "notice"):
        assert advertising in _intro(lang, everything, mode)
        intro = _intro(lang, no_ads, mode)
        assert advertising not in intro
        assert "{" not in intro
    # The remaining purposes are still named, joined as the language joins a list.
    joined = {"en": " and ", "fr": " et ", "de": " und ", "es": " y ", "tr": " ve "}[lang]
    assert joined in _intro(lang, no_ads)


def test_banner_intro_default_categories_keep_todays_wording() -> None:
    # The ledger's banner hashes of existing sites stay as they were for opt-in and opt-out.
    cats = list(default_categories())
    assert _intro("en", cats) == (
        "We would like to use cookies to remember your preferences, measure our audience and "
        "show advertising. Only strictly necessary cookies are used unless you agree to more. "
        "Refusing is perfectly fine. You can change your mind at any time via “Cookie "
        "settings” at the bottom of every page."
    )
    assert _intro("tr", cats, "opt-out").startswith(
        "Tercihlerinizi hatırlamak, okur kitlemizi ölçmek ve reklam göstermek için çerez"
    )


def test_banner_intro_names_own_purposes_and_falls_back_when_none() -> None:
    own = Category(
        "newsletter", "Newsletter", "Counts opened letters.", purpose="count opened letters"
    )
    assert _intro("en", [*_builtin("necessary"), own]).startswith(
        "We would like to use cookies to count opened letters."
    )
    bare = Category("newsletter", "Newsletter", "Counts opened letters.")
    assert _intro("en", [*_builtin("necessary"), bare]).startswith(
        "We would like to use cookies to offer the optional features listed below."
    )
    # A notice asks nothing, so it names the strictly necessary purpose too.
    assert _intro("fr", _builtin("necessary", "analytics"), "notice").startswith(
        "Nous utilisons des cookies pour faire fonctionner le site et mesurer notre audience."
    )


def test_banner_intro_overridden_keeps_the_operators_words() -> None:
    texts = resolve_texts("en", {"en": {"intro": "Cookies here, for {purposes}."}})
    assert banner_intro(texts, _builtin("necessary", "analytics"), "opt-in") == (
        "Cookies here, for measure our audience."
    )
    plain = resolve_texts("en", {"en": {"intro": "Our own words."}})
    assert banner_intro(plain, _builtin("necessary", "analytics"), "opt-in") == "Our own words."
