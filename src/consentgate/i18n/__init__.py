"""Texts as data: one TOML file per language in ``locales/``, a table per part of the site.

``locales/en.toml`` is complete; another language may lack a key, which then falls back to
English, so a translation can arrive one key at a time. Read once per process.

Today the account pages live here (``[accounts]``); the banner, settings and wall texts
still live in :mod:`consentgate.consent.texts` and :mod:`consentgate.wall.cta`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

__all__ = ["LANGUAGES", "locale"]

FALLBACK = "en"
LANGUAGES = ("en", "fr", "de", "es", "tr")


@cache
def _file(lang: str) -> Mapping[str, Mapping[str, str]]:
    data = tomllib.loads(
        resources.files(__package__).joinpath("locales", f"{lang}.toml").read_text("utf-8")
    )
    return MappingProxyType({name: MappingProxyType(dict(table)) for name, table in data.items()})


@cache
def locale(lang: str, part: str) -> Mapping[str, str]:
    """The texts of ``part`` (a table of the files) in ``lang``, English where it has none;
    an unknown language is English."""
    merged = dict(_file(FALLBACK)[part])
    if lang != FALLBACK and lang in LANGUAGES:
        merged.update(_file(lang).get(part, {}))
    return MappingProxyType(merged)
