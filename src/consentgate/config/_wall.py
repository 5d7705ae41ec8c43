"""The reader of ``[wall]``: its fields come from wall/settings.py; what a type cannot say
(selectors that must parse, URLs, rules, the CTA texts) is checked here."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from consentgate.config._fields import checked, read_fields, string
from consentgate.config._table import unknown_key
from consentgate.errors import ConfigError
from consentgate.wall.settings import (
    CTA_KEYS,
    AccessName,
    AccessRuleSetting,
    CrawlerSettings,
    MeterSettings,
    WallSettings,
)

_CLASS_NAME = r"[A-Za-z_-][A-Za-z0-9_-]*"


def read_wall(
    key: str, raw: Mapping[str, Any], category_ids: Collection[str], languages: Sequence[str]
) -> WallSettings:
    return read_fields(
        raw,
        WallSettings,
        key + ".",
        check={
            "rules": _access_rules,
            "article_selector": check_selector,
            "paragraph_selector": check_selector,
            "remove_selectors": _remove_selectors,
            "gated_class": _gated_class,
            "meter": lambda key, table: _meter(key, table, category_ids),
            "crawlers": _crawlers,
            "cta": lambda key, value: _cta(key, value, languages),
            "register_url": _url,
            "login_url": _url,
        },
        derive={"gated_class": _gated_class_of_selector},
    )


def check_selector(key: str, selector: Any) -> str:
    # Imported here: config validates selectors with the rewriter's own parser, once.
    from consentgate.rewrite import SelectorError, compile_selector

    if not isinstance(selector, str):
        raise ConfigError(key, "must be a selector string")
    try:
        compile_selector(selector)
    except SelectorError as exc:
        raise ConfigError(key, str(exc)) from None
    return str(selector)


def _remove_selectors(key: str, remove: Any) -> tuple[str, ...]:
    if not isinstance(remove, list):
        raise ConfigError(key, "must be a list of selectors")
    for index, selector in enumerate(remove):
        check_selector(f"{key}[{index}]", selector)
    return tuple(remove)


def _url(key: str, url: str) -> str:
    """Sites with their own accounts point the CTA at their own sign-up and sign-in."""
    if not (url.startswith("/") or url.startswith(("https://", "http://"))):
        raise ConfigError(key, f"must be a path or an http(s) URL, got {url!r}")
    if "?" in url:
        raise ConfigError(key, "must not carry a query: ?next= is added to it")
    return url


def _gated_class(key: str, value: str) -> str:
    if not re.fullmatch(_CLASS_NAME, value):
        raise ConfigError(key, f"must be a CSS class name, got {value!r}")
    return value


def _gated_class_of_selector(values: Mapping[str, Any]) -> str:
    """Google's paywall markup names the gated part by a class: take the selector's."""
    last = values["article_selector"].split(",")[0].split()[-1]
    classes = re.findall(rf"\.({_CLASS_NAME})", last)
    if not classes:
        raise ConfigError(
            "wall.gated_class",
            "needed when wall.article_selector has no class (Google's paywall markup "
            "identifies the gated section by a class)",
        )
    return str(classes[0])


def _access_rules(key: str, value: Any) -> tuple[AccessRuleSetting, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of tables with path and access")
    rules = []
    for index, item in enumerate(value):
        item_key = f"{key}[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(item_key, "must be a table with path and access")
        path = string(item, "path", "", prefix=item_key + ".")
        if not path.startswith("/"):
            raise ConfigError(item_key + ".path", f"must start with '/', got {path!r}")
        access = checked(item_key + ".access", item.get("access", ""), AccessName)
        rules.append(AccessRuleSetting(path, access))
    return tuple(rules)


def _meter(key: str, raw: Mapping[str, Any], category_ids: Collection[str]) -> MeterSettings:
    def category(key: str, category: str) -> str:
        if category not in category_ids:
            raise ConfigError(key, f"unknown category {category!r}")
        return category

    meter = read_fields(
        raw,
        MeterSettings,
        key + ".",
        check={"category": category},
        # The network limit's default follows the reader limit.
        derive={"network_limit": lambda values: max(10, values["limit"])},
    )
    if meter.network_limit < meter.limit:
        raise ConfigError(f"{key}.network_limit", "must be at least the per-reader limit")
    return meter


def _crawlers(key: str, raw: Mapping[str, Any]) -> CrawlerSettings:
    return read_fields(
        raw, CrawlerSettings, key + ".", check={"domains": _domains, "ip_ranges": _ip_ranges}
    )


def _domains(key: str, domains: Any) -> tuple[str, ...]:
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise ConfigError(key, "must be a list of domain names")
    return tuple(d.lower().strip(".") for d in domains)


def _ip_ranges(key: str, ranges: Any) -> tuple[str, ...]:
    if not isinstance(ranges, list):
        raise ConfigError(key, "must be a list of CIDR ranges")
    for index, cidr in enumerate(ranges):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (ValueError, TypeError):
            raise ConfigError(f"{key}[{index}]", f"not an IP range: {cidr!r}") from None
    return tuple(ranges)


def _cta(key: str, value: Any, languages: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table of LANGUAGE = { heading = …, … }")
    result: dict[str, dict[str, Any]] = {}
    for lang, overrides in value.items():
        lang_key = f"{key}.{lang}"
        if lang not in languages:
            raise ConfigError(lang_key, "language not listed in languages")
        if not isinstance(overrides, Mapping):
            raise ConfigError(lang_key, "must be a table")
        for text_key, text in overrides.items():
            if text_key not in CTA_KEYS:
                raise unknown_key(f"{lang_key}.{text_key}", text_key, CTA_KEYS)
            if text_key == "benefits":
                if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                    raise ConfigError(f"{lang_key}.benefits", "must be a list of strings")
            elif not isinstance(text, str):
                raise ConfigError(f"{lang_key}.{text_key}", "must be a string")
        result[lang] = dict(overrides)
    return result
