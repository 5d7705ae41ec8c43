"""Sections read by the one field reader: their defaults, types, choices and ranges come from
the settings dataclasses, so a default cannot be written twice and drift."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

import pytest
from tests.conftest import REPO_ROOT, SECRET

from consentgate.config import (
    AccountsSettings,
    Config,
    ConfigError,
    ConsentModeSettings,
    CookieNames,
    CrawlerSettings,
    MeterSettings,
    Policy,
    Regions,
    WallSettings,
)


def _load(**options: Any) -> Config:
    return Config.from_mapping({"secret_keys": [SECRET], **options})


def test_config_fields_defaults_are_the_dataclasses() -> None:
    config = _load()
    assert config.accounts == AccountsSettings()
    assert config.consent_mode == ConsentModeSettings()
    assert config.wall.meter == MeterSettings()
    assert config.wall.crawlers == CrawlerSettings()


def test_config_fields_read_values_and_renamed_keys() -> None:
    config = _load(
        accounts={"min_password_length": 12, "ipv6_prefix": 56},
        consent_mode={"enabled": True, "wait_for_update": 0},
        wall={
            "meter": {"limit": 20, "period": "calendar-month"},
            "crawlers": {"timeout_seconds": 1},
        },
    )
    assert config.accounts.min_password_length == 12 and config.accounts.ipv6_prefix == 56
    assert config.consent_mode.wait_for_update_ms == 0
    assert config.wall.meter.period == "calendar-month"
    # The network limit's default follows the reader limit.
    assert config.wall.meter.network_limit == 20
    timeout = config.wall.crawlers.timeout_seconds
    assert timeout == 1.0 and isinstance(timeout, float)


@pytest.mark.parametrize(
    ("options", "key", "reason"),
    [
        ({"accounts": {"enabled": "yes"}}, "accounts.enabled", "must be true or false"),
        ({"accounts": {"min_password_length": 7}}, "accounts.min_password_length", "8 <="),
        ({"accounts": {"ipv6_prefix": 129}}, "accounts.ipv6_prefix", "<= 128, got 129"),
        ({"accounts": {"register_per_hour": 2.5}}, "accounts.register_per_hour", "whole number"),
        ({"consent_mode": {"wait_for_update": -1}}, "consent_mode.wait_for_update", "0 <="),
        ({"wall": {"meter": {"store": "disk"}}}, "wall.meter.store", "one of cookie, server"),
        ({"wall": {"meter": {"limit": True}}}, "wall.meter.limit", "whole number"),
        ({"wall": {"crawlers": {"timeout_seconds": 0}}}, "wall.crawlers.timeout_seconds", "0 <"),
        (
            {"wall": {"crawlers": {"timeout_seconds": "2"}}},
            "wall.crawlers.timeout_seconds",
            "a number",
        ),
    ],
)
def test_config_fields_wrong_value_names_key_and_rule(
    options: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(**options)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_config_fields_every_section_defaults_to_its_dataclass() -> None:
    config = _load()
    assert config.wall == WallSettings()
    assert config.regions == Regions()
    assert config.cookie_names == CookieNames()
    assert dataclasses.replace(config.policy, text_sha256="") == Policy()
    built = Config(secret_keys=(SECRET,))
    # Resolved against the configuration's folder; hashed from version and URL.
    computed = {"database_url", "policy"}
    for spec in dataclasses.fields(Config):
        if spec.name not in computed:
            assert getattr(config, spec.name) == getattr(built, spec.name), spec.name


def test_config_fields_derived_defaults_follow_their_field() -> None:
    config = _load(consent_lifetime_days=30, wall={"article_selector": "main .story"})
    assert config.reject_lifetime_days == 30
    assert config.wall.gated_class == "story"
    assert _load(reject_lifetime_days=60).reject_lifetime_days == 60


@pytest.mark.parametrize("owner", ["consent", "wall", "accounts"])
def test_config_fields_settings_types_do_not_import_the_loader(owner: str) -> None:
    # config/ imports the owners' settings types, never the reverse: no circle.
    path = REPO_ROOT / "src" / "consentgate" / owner / "settings.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {
        m for m in imported if m == "consentgate.config" or m.startswith("consentgate.config.")
    }
