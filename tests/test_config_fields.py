"""Sections read by the one field reader: their defaults, types, choices and ranges come from
the settings dataclasses, so a default cannot be written twice and drift."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import SECRET

from consentgate.config import (
    AccountsSettings,
    Config,
    ConfigError,
    ConsentModeSettings,
    CrawlerSettings,
    MeterSettings,
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
