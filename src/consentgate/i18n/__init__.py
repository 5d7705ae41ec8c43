"""Texts as data: one TOML file per language in ``locales/``, a table per part of the site.

``locales/en.toml`` is complete; another language may lack a key, which then falls back to
English, so a translation can arrive one key at a time. Read once per process.

Tables: ``[consent]`` (the banner, the settings page, consent errors; read through
:mod:`consentgate.consent.texts`), ``[wall]`` (the call to action; :mod:`consentgate.wall.cta`)
and ``[accounts]`` (the account pages).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

__all__ = ["LANGUAGES", "locale", "table"]

FALLBACK = "en"
LANGUAGES = ("en", "fr", "de", "es", "tr")


@cache
def _file(lang: str) -> Mapping[str, Mapping[str, object]]:
    data = tomllib.loads(
        resources.files(__package__).joinpath("locales", f"{lang}.toml").read_text("utf-8")
    )
    return MappingProxyType({name: MappingProxyType(dict(table)) for name, table in data.items()})


def table(lang: str, part: str) -> Mapping[str, object]:
    """The texts of ``part`` exactly as ``locales/<lang>.toml`` has them (no fallback)."""
    return _file(lang)[part]


@cache
def locale(lang: str, part: str) -> Mapping[str, str]:
    """The texts of ``part`` (a table of the files) in ``lang``, English where it has none;
    an unknown language is English."""
    merged = {k: str(v) for k, v in _file(FALLBACK)[part].items()}
    if lang != FALLBACK and lang in LANGUAGES:
        merged.update((k, str(v)) for k, v in _file(lang).get(part, {}).items())
    return MappingProxyType(merged)
