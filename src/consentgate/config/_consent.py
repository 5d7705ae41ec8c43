"""Readers of the consent sections: categories, cookie rules and names, the policy,
regions, languages and text overrides. The settings types are consent/settings.py's."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from consentgate.config._fields import boolean, read_fields, string
from consentgate.config._table import unknown_key
from consentgate.consent.cookies import CookieRule
from consentgate.consent.settings import (
    CONSENT_MODE_SIGNALS,
    REGION_MODES,
    SUPPORTED_LANGUAGES,
    Category,
    CookieNames,
    Policy,
    Regions,
    default_categories,
)

# texts.py holds the built-in wording; config only checks the keys of overrides.
from consentgate.consent.texts import TEXT_KEYS
from consentgate.errors import ConfigError

_CATEGORY_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_COOKIE_NAME_PATTERN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z?\[\]]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_SAFE_COOKIE_NAME = re.compile(r"[A-Za-z0-9_.-]+")

_BUILTIN_CATEGORIES = {c.id: c for c in default_categories()}


def read_policy(key: str, raw: Mapping[str, Any], base_dir: Path) -> Policy:
    """The policy's text file is relative to the configuration file; its SHA-256 (else
    that of version and URL) is what readers' consent records name."""

    def version(key: str, version: str) -> str:
        if not version.strip():
            raise ConfigError(key, "must not be empty")
        return version

    policy = read_fields(
        raw,
        Policy,
        key + ".",
        check={"version": version, "text_file": lambda _, name: str(base_dir / name)},
        text_sha256="",
    )
    digest = hashlib.sha256(f"{policy.version}\n{policy.url}".encode()).hexdigest()
    if policy.text_file is not None:
        path = Path(policy.text_file)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ConfigError(f"{key}.text_file", f"cannot read {path}: {exc.strerror}") from None
    return dataclasses.replace(policy, text_sha256=digest)


def read_categories(value: Any) -> tuple[Category, ...]:
    if value is None:
        return default_categories()
    if not isinstance(value, list) or not value:
        raise ConfigError("categories", "must be a non-empty list of tables")
    seen: set[str] = set()
    categories = []
    for index, item in enumerate(value):
        key = f"categories[{index}]"
        if isinstance(item, Category):
            categories.append(item)
            seen.add(item.id)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(key, "must be a table with id, title, description")
        category_id = string(item, "id", "", prefix=key + ".")
        if not _CATEGORY_ID.match(category_id):
            raise ConfigError(
                key + ".id", "lower-case letters, digits, '-' or '_', starting with a letter"
            )
        if category_id in seen:
            raise ConfigError(key + ".id", f"duplicate category {category_id!r}")
        seen.add(category_id)
        # A built-in id keeps what it has built in (texts and their translations, GPC,
        # Consent Mode signals) unless the table says otherwise; an id of the site's own
        # has nothing to fall back on, so its texts are required.
        builtin = _BUILTIN_CATEGORIES.get(category_id)
        if builtin is None:
            for text_key in ("title", "description"):
                if text_key not in item:
                    raise ConfigError(
                        f"{key}.{text_key}",
                        f"required for the category {category_id!r}: only the built-in "
                        f"ones ({', '.join(_BUILTIN_CATEGORIES)}) have texts of their own",
                    )
        base = builtin or Category(category_id, "", "")
        signals = item.get("consent_mode", list(base.consent_mode))
        if not isinstance(signals, list) or any(s not in CONSENT_MODE_SIGNALS for s in signals):
            raise ConfigError(
                key + ".consent_mode", f"must be a list of: {', '.join(CONSENT_MODE_SIGNALS)}"
            )
        categories.append(
            Category(
                id=category_id,
                title=string(item, "title", base.title, prefix=key + "."),
                description=string(item, "description", base.description, prefix=key + "."),
                purpose=string(item, "purpose", base.purpose, prefix=key + "."),
                required=boolean(item, "required", base.required, prefix=key + "."),
                gpc=boolean(item, "gpc", base.gpc, prefix=key + "."),
                consent_mode=tuple(signals),
            )
        )
    if "necessary" not in seen:
        raise ConfigError(
            "categories", "must include the 'necessary' category (our own cookies live there)"
        )
    necessary = next(c for c in categories if c.id == "necessary")
    if not necessary.required:
        raise ConfigError("categories", "the 'necessary' category must have required = true")
    return tuple(categories)


def read_cookie_rules(value: Any, category_ids: set[str]) -> tuple[CookieRule, ...]:
    if not isinstance(value, list):
        raise ConfigError("cookies", "must be a list of tables")
    rules = []
    for index, item in enumerate(value):
        key = f"cookies[{index}]"
        if isinstance(item, CookieRule):
            item = {
                "name": item.pattern,
                "category": item.category,
                "path": item.path,
                "domain": item.domain,
            }
        if not isinstance(item, Mapping):
            raise ConfigError(key, "must be a table with name and category")
        name = string(item, "name", "", prefix=key + ".")
        if not _COOKIE_NAME_PATTERN.match(name):
            raise ConfigError(key + ".name", f"not a cookie name or glob: {name!r}")
        category = string(item, "category", "", prefix=key + ".")
        if category not in category_ids:
            raise ConfigError(key + ".category", f"unknown category {category!r}")
        path = string(item, "path", "/", prefix=key + ".")
        if not path.startswith("/"):
            raise ConfigError(key + ".path", "must start with '/'")
        domain = item.get("domain")
        if domain is not None and (not isinstance(domain, str) or not domain.strip(".")):
            raise ConfigError(key + ".domain", "must be a domain name such as example.com")
        try:
            rules.append(
                CookieRule(pattern=name, category=category, path=path, domain=domain or None)
            )
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
    return tuple(rules)


def refuse_rules_for_own_cookies(rules: Sequence[CookieRule], names: CookieNames) -> None:
    """Our cookies are strictly necessary by definition; a rule must not say otherwise."""
    own = {names.consent, names.csrf, names.session, names.meter}
    for index, rule in enumerate(rules):
        if rule.pattern in own:
            raise ConfigError(
                f"cookies[{index}].name",
                f"{rule.pattern!r} is consentgate's own cookie (always necessary); remove the rule",
            )


def read_regions(key: str, raw: Mapping[str, Any]) -> Regions:
    regions = read_fields(
        raw,
        Regions,
        key + ".",
        check={"country_header": _country_header, "countries": _countries},
    )
    if regions.countries and regions.country_header is None:
        raise ConfigError(f"{key}.country_header", "needed when regions.countries is set")
    return regions


def _country_header(key: str, header: str) -> str:
    if not _HEADER_NAME.match(header):
        raise ConfigError(key, "must be an HTTP header name, e.g. CF-IPCountry")
    return header.lower()


def _countries(key: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table of COUNTRY = MODE")
    countries: dict[str, str] = {}
    for country, mode in value.items():
        if not _COUNTRY.match(str(country).upper()):
            raise ConfigError(f"{key}.{country}", "must be an ISO 3166-1 alpha-2 code")
        if mode not in REGION_MODES:
            raise ConfigError(f"{key}.{country}", f"must be one of {', '.join(REGION_MODES)}")
        countries[str(country).upper()] = mode
    return countries


def read_languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError("languages", "must be a non-empty list of language codes")
    for lang in value:
        if lang not in SUPPORTED_LANGUAGES:
            raise ConfigError(
                "languages",
                f"{lang!r} has no built-in texts; supported: {', '.join(SUPPORTED_LANGUAGES)}",
            )
    return tuple(value)


def read_texts(
    value: Any, languages: Iterable[str], category_ids: Iterable[str]
) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, Mapping):
        raise ConfigError("texts", "must be a table of LANGUAGE = { key = text }")
    allowed = set(languages)
    # The site's own categories are translated like the built-in ones.
    fields = ("title", "description", "purpose")
    known = TEXT_KEYS | {f"category.{c}.{field}" for c in category_ids for field in fields}
    result: dict[str, dict[str, str]] = {}
    for lang, overrides in value.items():
        if lang not in allowed:
            raise ConfigError(f"texts.{lang}", "language not listed in languages")
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"texts.{lang}", "must be a table of key = text")
        for text_key, text in overrides.items():
            if text_key not in known:
                raise unknown_key(f"texts.{lang}.{text_key}", text_key, known)
            if not isinstance(text, str):
                raise ConfigError(f"texts.{lang}.{text_key}", "must be a string")
        result[lang] = dict(overrides)
    return result


def read_cookie_names(key: str, raw: Mapping[str, Any]) -> CookieNames:
    names = read_fields(
        raw,
        CookieNames,
        key + ".",
        check={spec.name: _safe_cookie_name for spec in dataclasses.fields(CookieNames)},
    )
    if len(set(dataclasses.astuple(names))) != len(dataclasses.fields(CookieNames)):
        raise ConfigError(key, "each cookie needs its own name")
    return names


def _safe_cookie_name(key: str, name: str) -> str:
    if not _SAFE_COOKIE_NAME.fullmatch(name):
        raise ConfigError(key, f"not a safe cookie name: {name!r}")
    return name
