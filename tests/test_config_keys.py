"""Every table of the configuration refuses a key it does not know, naming the key in full
and, when one is close, the key that was meant. A misspelt key must never leave its default
silently in place."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import Config, ConfigError

# A configuration that sets at least one key in every table the loader reads, list items
# included. New sections belong here: the tests below then check them too.
FULL = """
secret_keys = ["a-test-key-that-is-long-enough-0123456789"]
database_url = "sqlite:///:memory:"
prefix = "/consentgate"
site_name = "The Test Courier"
unknown_cookies = "block"
consent_lifetime_days = 180
reject_lifetime_days = 90
languages = ["en", "fr"]
default_language = "en"
secure_cookies = "always"
meter_url = "redis://127.0.0.1:6379/0"
trusted_proxies = ["10.0.0.0/8"]
trusted_proxy_header = "x-forwarded-for"
frame_ancestors = ["'self'"]

[policy]
version = "7"
url = "/privacy"

[[categories]]
id = "necessary"
title = "Needed"
required = true

[[categories]]
id = "analytics"
title = "Audience"
description = "Counting readers"
gpc = true
consent_mode = ["analytics_storage"]

[[cookies]]
name = "_ga*"
category = "analytics"
path = "/"

[regions]
default = "opt-in"
country_header = "CF-IPCountry"

[regions.countries]
US = "opt-out"

[texts.en]
title = "Cookies at the Courier"

[cookie_names]
consent = "tc_consent"

[consent_mode]
enabled = true
wait_for_update = 300

[gpc]
enabled = true

[controller]
name = "Test Courier Ltd"
jurisdiction = "EU"

[wall]
default_access = "metered"
article_selector = "div.story"
lead_paragraphs = 3

[[wall.rules]]
path = "/news/**"
access = "metered"

[wall.meter]
limit = 4
period_days = 30

[wall.crawlers]
enabled = false
timeout_seconds = 1.5

[wall.cta.en]
heading = "Keep reading"

[accounts]
enabled = true
min_password_length = 12

[admin]
token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"""

# Tables whose keys are names the operator chooses (languages, countries): a wrong one is
# refused by its own check, which names it too, with no suggestion to offer.
NAMED_BY_OPERATOR = {"texts", "wall.cta", "regions.countries"}


def _tables(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from _tables(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _tables(item, f"{path}[{index}]")


def _misspell(key: str) -> str:
    """Swap two letters in the middle: the kind of slip a hand makes."""
    middle = len(key) // 2
    if len(key) < 3:
        return key + key[-1]
    return key[: middle - 1] + key[middle] + key[middle - 1] + key[middle + 1 :]


def _table_at(raw: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(_tables(raw))[path]


FULL_RAW = tomllib.loads(FULL)
TABLES = [path for path, _ in _tables(FULL_RAW)]


def test_config_keys_full_configuration_loads() -> None:
    config = Config.from_mapping(FULL_RAW)
    assert config.policy.version == "7"
    assert config.wall.meter.limit == 4
    assert config.categories[1].title == "Audience"
    assert config.consent_mode.wait_for_update_ms == 300


def test_config_keys_cover_every_section() -> None:
    # The list above reaches the nested tables and the list items, not only the top level.
    assert {"", "policy", "wall", "wall.meter", "wall.crawlers", "wall.rules[0]"} <= set(TABLES)
    assert {"categories[1]", "cookies[0]", "accounts", "admin", "gpc", "regions"} <= set(TABLES)


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p or "top-level")
def test_config_keys_unknown_key_refused_in_every_table(path: str) -> None:
    raw = copy.deepcopy(FULL_RAW)
    table = _table_at(raw, path)
    known = sorted(table)
    typo = _misspell(known[0])
    assert typo not in table
    table[typo] = table[known[0]]
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(raw)
    full = f"{path}.{typo}" if path else typo
    assert caught.value.key == full
    if path not in NAMED_BY_OPERATOR:
        assert "unknown key" in caught.value.reason
        assert repr(known[0]) in caught.value.reason  # the key that was meant


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[policy]\nverison = "2"\n', "policy.verison: unknown key — did you mean 'version'?"),
        ("[wall.meter]\nlimt = 5\n", "wall.meter.limt: unknown key — did you mean 'limit'?"),
        (
            '[admin]\ntoken_sha265 = "ab"\n',
            "admin.token_sha265: unknown key — did you mean 'token_sha256'?",
        ),
        (
            '[[cookies]]\nname = "_ga"\ncategroy = "analytics"\n',
            "cookies[0].categroy: unknown key — did you mean 'category'?",
        ),
        ('[texts.en]\ntilte = "x"\n', "texts.en.tilte: unknown key — did you mean 'title'?"),
        ("[gpc]\nenable = false\n", "gpc.enable: unknown key — did you mean 'enabled'?"),
    ],
)
def test_config_keys_misspelling_named_from_toml(tmp_path: Path, toml: str, message: str) -> None:
    file = tmp_path / "consentgate.toml"
    file.write_text('secret_keys = ["a-test-key-that-is-long-enough-0123456789"]\n' + toml)
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(file)
    assert str(caught.value) == message


def _load(raw: dict[str, Any]) -> Config:
    return Config.from_mapping({"secret_keys": FULL_RAW["secret_keys"], **raw})


def test_config_keys_misspelt_required_key_named_not_its_symptom() -> None:
    # Without the check, `categroy` left category empty: "unknown category ''".
    raw = {"cookies": [{"name": "_ga", "categroy": "analytics"}]}
    with pytest.raises(ConfigError) as caught:
        _load(raw)
    assert caught.value.key == "cookies[0].categroy"
    assert "did you mean 'category'" in caught.value.reason


def test_config_keys_misspelt_policy_version_would_have_kept_the_old_one() -> None:
    # The harm the check prevents: the typo kept version "1" and nobody was asked again.
    assert _load({"policy": {"version": "2"}}).policy.version == "2"
    with pytest.raises(ConfigError, match=r"policy\.verison"):
        _load({"policy": {"verison": "2"}})


def test_config_keys_unknown_key_without_a_near_one_lists_the_known() -> None:
    with pytest.raises(ConfigError) as caught:
        _load({"consent_mode": {"colour": "blue"}})
    assert caught.value.key == "consent_mode.colour"
    assert caught.value.reason == "unknown key; known: enabled, wait_for_update"


def test_config_keys_valid_value_of_wrong_type_still_names_its_own_problem() -> None:
    # The misspelling check must not hide a plain wrong value behind a guess.
    with pytest.raises(ConfigError) as caught:
        _load({"wall": {"meter": {"limit": "three"}}})
    assert caught.value.key == "wall.meter.limit"
    assert "unknown key" not in caught.value.reason
