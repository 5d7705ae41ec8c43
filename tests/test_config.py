"""Configuration: defaults, TOML loading, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SECRET, html_app

from consentgate import Config, ConfigError, ConsentGate

GOOD: dict[str, Any] = {"secret_keys": [SECRET]}


def test_config_defaults_are_the_documented_ones() -> None:
    config = Config.from_mapping(GOOD)
    assert config.category_ids == ("necessary", "preferences", "analytics", "marketing")
    assert config.required_category_ids == {"necessary"}
    assert config.gpc_category_ids == {"marketing"}
    assert config.consent_lifetime_days == 182
    assert config.prefix == "/consentgate"
    assert config.cookie_names.consent == "cg_consent"
    assert config.cookie_names.csrf == "cg_csrf"
    assert config.unknown_cookies == "auto"
    assert config.regions.default == "opt-in"
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith(
        "consentgate.db"
    )


def test_config_from_toml_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "policy.md").write_text("Our policy.\n", encoding="utf-8")
    toml = tmp_path / "consentgate.toml"
    toml.write_text(
        f"""
secret_keys = ["{SECRET}"]
database_url = "sqlite:///data/ledger.db"
[policy]
version = "2026-11"
text_file = "policy.md"
[[cookies]]
name = "_ga*"
category = "analytics"
domain = "example.com"
[regions]
country_header = "CF-IPCountry"
countries = {{ us = "opt-out" }}
""",
        encoding="utf-8",
    )
    config = Config.from_toml(toml)
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    assert config.policy.version == "2026-11"
    import hashlib

    assert config.policy.text_sha256 == hashlib.sha256(b"Our policy.\n").hexdigest()
    assert config.cookies[0].pattern == "_ga*"
    assert config.cookies[0].domain == "example.com"
    assert config.regions.mode_for("US") == "opt-out"
    assert config.regions.mode_for("FR") == "opt-in"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"secret_keys": ["short"]}, "secret_keys[0]"),
        ({"secret_keys": "x" * 40, "consent_lifetime_days": 400}, "consent_lifetime_days"),
        ({"consent_lifetime_days": 0}, "consent_lifetime_days"),
        ({"consent_lifetime_days": "182"}, "consent_lifetime_days"),
        ({"prefix": "consentgate"}, "prefix"),
        ({"prefix": "/cg/"}, "prefix"),
        ({"database_url": "mysql://x"}, "database_url"),
        ({"unknown_cookies": "maybe"}, "unknown_cookies"),
        ({"colour": "blue"}, "colour"),
        ({"categories": [{"id": "analytics"}]}, "categories"),
        ({"categories": [{"id": "necessary", "required": False}]}, "categories"),
        (
            {"categories": [{"id": "necessary", "required": True}, {"id": "Bad Id"}]},
            "categories[1].id",
        ),
        (
            {
                "categories": [
                    {"id": "necessary", "required": True},
                    {"id": "a", "title": "A", "description": "a", "consent_mode": ["x"]},
                ]
            },
            "categories[1].consent_mode",
        ),
        ({"cookies": [{"name": "_ga", "category": "nope"}]}, "cookies[0].category"),
        ({"cookies": [{"name": "a b", "category": "analytics"}]}, "cookies[0].name"),
        ({"cookies": [{"name": "x", "category": "analytics", "path": "x"}]}, "cookies[0].path"),
        ({"cookies": [{"name": "cg_consent", "category": "analytics"}]}, "cookies[0].name"),
        ({"regions": {"default": "maybe"}}, "regions.default"),
        ({"regions": {"countries": {"US": "opt-out"}}}, "regions.country_header"),
        (
            {"regions": {"country_header": "X-C", "countries": {"USA": "opt-out"}}},
            "regions.countries.USA",
        ),
        ({"languages": ["en", "xx"]}, "languages"),
        ({"default_language": "fr", "languages": ["en"]}, "default_language"),
        ({"texts": {"en": {"no_such_text": "x"}}}, "texts.en.no_such_text"),
        ({"texts": {"de": {"title": "x"}}, "languages": ["en"]}, "texts.de"),
        ({"cookie_names": {"consent": "a;b"}}, "cookie_names.consent"),
        ({"cookie_names": {"consent": "same", "csrf": "same"}}, "cookie_names"),
        ({"consent_mode": {"enabled": "yes"}}, "consent_mode.enabled"),
        ({"policy": {"text_file": "does-not-exist.md"}}, "policy.text_file"),
        ({"policy": {"version": " "}}, "policy.version"),
        ({"secure_cookies": "sometimes"}, "secure_cookies"),
    ],
)
def test_config_invalid_value_names_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.from_mapping({**GOOD, **options})
    assert excinfo.value.key == key
    assert str(excinfo.value).startswith(f"{key}: ")


def test_config_secret_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_SECRET_KEYS", f"{SECRET}, {'o' * 40}")
    config = Config.from_mapping({})
    assert config.secret_keys == (SECRET, "o" * 40)


def test_config_secret_keys_in_file_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_SECRET_KEYS", "e" * 40)
    assert Config.from_mapping(GOOD).secret_keys == (SECRET,)


def test_middleware_refuses_to_start_without_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)
    with pytest.raises(ConfigError) as excinfo:
        ConsentGate(html_app())
    assert excinfo.value.key == "secret_keys"


def test_middleware_refuses_config_and_options_together(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="either config= or keyword options"):
        ConsentGate(html_app(), config=Config.from_mapping(GOOD), prefix="/x")


def test_config_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("secret_keys = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(path)


def test_config_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Config.from_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("wall", "key"),
    [
        ({"rules": [{"path": "articles/*", "access": "metered"}]}, "wall.rules[0].path"),
        ({"rules": [{"path": "/a/*", "access": "paid"}]}, "wall.rules[0].access"),
        ({"article_selector": "div..x"}, "wall.article_selector"),
        ({"article_selector": "#body"}, "wall.gated_class"),
        ({"remove_selectors": ["[unclosed"]}, "wall.remove_selectors[0]"),
        ({"lead_paragraphs": -1}, "wall.lead_paragraphs"),
        ({"meter": {"limit": 0}}, "wall.meter.limit"),
        ({"meter": {"store": "memory"}}, "wall.meter.store"),
        ({"meter": {"period": "weekly"}}, "wall.meter.period"),
        ({"meter": {"category": "nope"}}, "wall.meter.category"),
        ({"meter": {"limit": 5, "network_limit": 2}}, "wall.meter.network_limit"),
        ({"crawlers": {"ip_ranges": ["not-a-range"]}}, "wall.crawlers.ip_ranges[0]"),
        ({"crawlers": {"timeout_seconds": 0}}, "wall.crawlers.timeout_seconds"),
        ({"cta": {"en": {"headline": "x"}}}, "wall.cta.en.headline"),
        ({"cta": {"en": {"benefits": "one"}}}, "wall.cta.en.benefits"),
        ({"register_url": "javascript:alert(1)"}, "wall.register_url"),
        ({"login_url": "/in?x=1"}, "wall.login_url"),
        ({"paywall": True}, "wall.paywall"),
    ],
)
def test_config_invalid_wall_value_names_the_key(wall: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.from_mapping({**GOOD, "wall": wall})
    assert excinfo.value.key == key


def test_config_wall_gated_class_comes_from_the_selector() -> None:
    config = Config.from_mapping(
        {**GOOD, "wall": {"article_selector": "main div.story-body__inner"}}
    )
    assert config.wall.gated_class == "story-body__inner"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"secret_keys": ("short",)}, "secret_keys[0]"),
        ({"consent_lifetime_days": 1000}, "consent_lifetime_days"),
        ({"categories": ()}, "categories"),
        ({"prefix": "no-slash"}, "prefix"),
        ({"default_language": "it"}, "default_language"),
    ],
)
def test_config_built_directly_is_checked_too(change: dict[str, Any], key: str) -> None:
    import dataclasses

    with pytest.raises(ConfigError) as excinfo:
        dataclasses.replace(Config.from_mapping(GOOD), **change)
    assert excinfo.value.key == key
