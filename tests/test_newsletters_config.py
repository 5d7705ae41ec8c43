"""``[[newsletters]]`` and ``public_url``: a mistake stops the app at start-up, naming
the key; texts by language, English required and standing in for the others."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import SUPPORTED_LANGUAGES, Config, ConfigError

KEY = "a-test-key-that-is-long-enough-0123456789"
URL = "https://news.example"


def week(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "week-in-review",
        "name": "The Week in Review",
        "description": "The week's reporting, with the long reads.",
        "frequency": "Saturdays",
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def load(lists: Any, **options: Any) -> Config:
    options.setdefault("public_url", URL)
    return Config.from_mapping({"secret_keys": [KEY], "newsletters": lists, **options})


def refused(lists: Any, **options: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(lists, **options)
    return caught.value


def test_newsletters_config_texts_plain_or_by_language() -> None:
    config = load(
        [
            week(),
            week(
                id="morning-brief",
                name={"en": "The Morning Brief", "fr": "Le Point du matin"},
                frequency={"en": "every weekday", "fr": "chaque jour de semaine"},
            ),
        ]
    )
    plain, by_language = config.newsletters
    assert plain.text("name", "de") == "The Week in Review"  # English stands in
    assert by_language.text("name", "fr") == "Le Point du matin"
    assert by_language.text_shown("fr") == (
        "Le Point du matin\nThe week's reporting, with the long reads.\nchaque jour de semaine"
    )
    assert config.public_url == URL


def test_newsletters_config_none_by_default() -> None:
    assert Config.from_mapping({"secret_keys": [KEY]}).newsletters == ()


@pytest.mark.parametrize(
    ("bad_id", "key"),
    [
        ("Week", "newsletters[0].id"),
        ("week_in_review", "newsletters[0].id"),
        ("w" * 41, "newsletters[0].id"),
        ("", "newsletters[0].id"),
        (7, "newsletters[0].id"),
        (None, "newsletters[0].id"),
    ],
)
def test_newsletters_config_bad_id_refused_naming_the_key(bad_id: Any, key: str) -> None:
    error = refused([week(id=bad_id)])
    assert error.key == key
    assert "lower-case letters, digits or '-'" in error.reason


def test_newsletters_config_duplicate_id_refused() -> None:
    error = refused([week(), week(name="Another")])
    assert error.key == "newsletters[1].id"
    assert "earlier list" in error.reason


@pytest.mark.parametrize("field", ["name", "description", "frequency"])
def test_newsletters_config_missing_text_refused(field: str) -> None:
    error = refused([week(**{field: None})])
    assert error.key.startswith(f"newsletters[0].{field}")


def test_newsletters_config_english_required() -> None:
    error = refused([week(name={"de": "Der Wochenrückblick"})])
    assert error.key == "newsletters[0].name.en"


def test_newsletters_config_unknown_language_and_empty_text_refused() -> None:
    assert refused([week(name={"en": "Week", "xx": "?"})]).key == "newsletters[0].name.xx"
    assert refused([week(frequency={"en": "  "})]).key == "newsletters[0].frequency.en"


def test_newsletters_config_misspelt_key_refused() -> None:
    error = refused([week(frequncy="weekly")])
    assert error.key == "newsletters[0].frequncy"
    assert "frequency" in error.reason


def test_newsletters_config_bad_mailto_refused() -> None:
    error = refused([week(unsubscribe_mailto="not an address")])
    assert error.key == "newsletters[0].unsubscribe_mailto"


def test_newsletters_config_not_an_array_refused() -> None:
    assert refused({"id": "week"}).key == "newsletters"


def test_newsletters_config_need_a_public_url() -> None:
    error = refused([week()], public_url="")
    assert error.key == "public_url"
    assert "newsletters" in error.reason


@pytest.mark.parametrize(
    "url",
    ["http://news.example", "https://news.example/path", "news.example", "https://"],
)
def test_newsletters_config_public_url_must_be_an_https_origin(url: str) -> None:
    assert refused([week()], public_url=url).key == "public_url"


def test_newsletters_config_public_url_http_only_for_a_local_host() -> None:
    assert load([week()], public_url="http://127.0.0.1:8000/").public_url == (
        "http://127.0.0.1:8000"
    )


def test_newsletters_config_refused_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{KEY}"]\npublic_url = "{URL}"\n'
        '[[newsletters]]\nid = "daily"\nname = "Daily"\ndescription = "D"\nfrequency = "daily"\n'
        '[[newsletters]]\nid = "daily"\nname = "Again"\ndescription = "D"\nfrequency = "daily"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(path)
    assert caught.value.key == "newsletters[1].id"


def test_newsletters_config_demo_has_its_two_lists() -> None:
    demo = Path(__file__).resolve().parents[1] / "examples" / "newsroom" / "consentgate.toml"
    config = Config.from_toml(demo)
    names = [lst.text("name", "en") for lst in config.newsletters]
    assert len(names) == 2 and "The Week in Review" in names
    for lst in config.newsletters:  # written in French too, not the English stand-in
        assert lst.text("name", "fr") != lst.text("name", "en")
        assert lst.text("frequency", "fr") != lst.text("frequency", "en")


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_newsletters_config_locale_texts_complete(lang: str) -> None:
    def table(code: str) -> dict[str, str]:
        text = resources.files("consentgate.i18n").joinpath("locales", f"{code}.toml")
        return dict(tomllib.loads(text.read_text("utf-8"))["newsletters"])

    english, texts = table("en"), table(lang)
    assert sorted(texts) == sorted(english)
    for key, text in texts.items():
        assert text.strip() == text and text, key
        for placeholder in ("{name}", "{frequency}", "{site}"):
            assert (placeholder in text) == (placeholder in english[key]), (lang, key)
        if lang != "en":
            assert text != english[key], f"{lang}.{key} is still the English text"
