"""The words readers see: built-in texts in five languages, overrides, negotiation.

Every text a reader can be shown has a key in :data:`TEXT_KEYS`. Operators may replace
any of them per language (``[texts.fr]`` in ``consentgate.toml``); :func:`resolve_texts`
merges the built-in wording with those overrides. :func:`banner_text_sha256` fingerprints
exactly what the banner showed, so the consent ledger can prove it later (GDPR Art. 7(1)).

Placeholders: ``policy_version`` contains ``{version}``; it is substituted with
``str.replace`` (never ``str.format``), so operator texts cannot reach Python formatting.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

from consentgate.consent.settings import Category, RegionMode, default_categories
from consentgate.i18n import LANGUAGES, table

__all__ = [
    "BUILTIN_TEXTS",
    "DEFAULT_CATEGORY_IDS",
    "TEXT_KEYS",
    "ResolvedTexts",
    "banner_intro",
    "banner_text_sha256",
    "category_text",
    "intro_key",
    "negotiate_language",
    "resolve_texts",
]

_EN_DEFAULTS = {c.id: c for c in default_categories()}
DEFAULT_CATEGORY_IDS: tuple[str, ...] = tuple(_EN_DEFAULTS)

# The wording itself is data: the [consent] table of i18n/locales/<lang>.toml.
BUILTIN_TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        lang: MappingProxyType({k: str(v) for k, v in table(lang, "consent").items()})
        for lang in LANGUAGES
    }
)

TEXT_KEYS: frozenset[str] = frozenset(BUILTIN_TEXTS["en"])

_FALLBACK_LANGUAGE = "en"


# ---------------------------------------------------------------------------------
# Resolution


class ResolvedTexts(Mapping[str, str]):
    """Built-in texts for one language with the operator's overrides applied.

    Immutable and hashable by identity; :attr:`overridden` names the keys the operator
    replaced (used by :func:`category_text`).
    """

    __slots__ = ("_data", "lang", "overridden")

    def __init__(self, lang: str, data: Mapping[str, str], overridden: frozenset[str]) -> None:
        self.lang = lang
        self._data: Mapping[str, str] = MappingProxyType(dict(data))
        self.overridden = overridden

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ResolvedTexts(lang={self.lang!r}, overridden={sorted(self.overridden)!r})"


#: ``category.<id>.title`` / ``.description`` of any category: the site's own ones too.
_CATEGORY_KEY = re.compile(r"category\.[a-z][a-z0-9_-]*\.(?:title|description|purpose)")


@lru_cache(maxsize=256)
def _resolve(lang: str, overrides: tuple[tuple[str, str], ...]) -> ResolvedTexts:
    base = dict(BUILTIN_TEXTS[_FALLBACK_LANGUAGE])
    base.update(BUILTIN_TEXTS.get(lang, {}))
    applied = {
        key: text for key, text in overrides if key in TEXT_KEYS or _CATEGORY_KEY.fullmatch(key)
    }
    base.update(applied)
    return ResolvedTexts(lang, base, frozenset(applied))


def resolve_texts(lang: str, overrides: Mapping[str, Mapping[str, str]]) -> Mapping[str, str]:
    """Texts for ``lang``: built-in wording, then the operator's ``[texts.<lang>]``.

    Unknown languages fall back to English; unknown override keys are ignored (config
    validation already rejects them). Results are cached per (lang, overrides) content,
    so calling this on every request is cheap.
    """
    lang_overrides = overrides.get(lang, {})
    frozen = tuple(sorted((str(k), str(v)) for k, v in lang_overrides.items()))
    return _resolve(lang, frozen)


def intro_key(mode: RegionMode) -> str:
    """The text key of the banner's intro paragraph for a region mode."""
    if mode == "opt-out":
        return "intro_opt_out"
    if mode == "notice":
        return "intro_notice"
    return "intro"


def banner_intro(texts: Mapping[str, str], categories: Sequence[Category], mode: RegionMode) -> str:
    """The banner's intro for ``mode``, naming the purposes of the configured categories.

    An intro holds ``{purposes}`` (``{Purposes}`` at the start of a sentence): the
    purposes of the optional categories, in display order, joined as the language joins
    a list ("a, b and c"); a notice names the strictly necessary ones too, since it asks
    nothing. A site without advertising is never told it shows advertising. A category
    without a purpose is not named; when none is left, a neutral phrase stands in.
    """
    template = texts.get(intro_key(mode), "")
    named = [
        _category_field(texts, c, "purpose")
        for c in categories
        if mode == "notice" or not c.required
    ]
    purposes = [p for p in named if p] or [texts.get("purpose_fallback", "")]
    joined = purposes[0]
    if len(purposes) > 1:
        joined = f"{', '.join(purposes[:-1])} {texts.get('list_and', 'and')} {purposes[-1]}"
    capitalised = joined[:1].upper() + joined[1:]
    return template.replace("{purposes}", joined).replace("{Purposes}", capitalised)


def _is_overridden(texts: Mapping[str, str], key: str) -> bool:
    if isinstance(texts, ResolvedTexts):
        return key in texts.overridden
    value = texts.get(key)
    if value is None:
        return False
    return all(table.get(key) != value for table in BUILTIN_TEXTS.values())


def category_text(texts: Mapping[str, str], category: Category) -> tuple[str, str]:
    """The (title, description) to show for ``category`` in the reader's language.

    The translated text key ``category.<id>.title`` / ``.description`` is used when the
    operator overrode it, or when the category is one of the defaults and its configured
    wording is still the English default. Otherwise (operators' own categories, or
    defaults the operator re-worded in the category table) the configured wording wins.
    Title and description are decided independently.
    """
    return _category_field(texts, category, "title"), _category_field(
        texts, category, "description"
    )


def _category_field(texts: Mapping[str, str], category: Category, field: str) -> str:
    """One text of a category (see :func:`category_text`): title, description or purpose."""
    configured: str = getattr(category, field)
    key = f"category.{category.id}.{field}"
    default = _EN_DEFAULTS.get(category.id)
    use_key = key in texts and (
        _is_overridden(texts, key)
        or (default is not None and configured == getattr(default, field))
    )
    return texts[key] if use_key else configured


def banner_text_sha256(
    texts: Mapping[str, str],
    categories: Sequence[Category],
    policy_version: str,
    *,
    mode: RegionMode = "opt-in",
    gpc: bool = False,
) -> str:
    """SHA-256 (hex) of exactly the wording the banner shows, for the consent ledger.

    The serialisation is canonical JSON (sorted keys, no whitespace, UTF-8) of: title,
    the intro for ``mode``, the GPC note if it was shown, every button and label, each
    category's id/title/description/required flag in display order, and the policy
    version. Deterministic; any change to a shown text changes the digest.
    """

    def text(key: str) -> str:
        return texts.get(key, "")

    shown = {
        "format": "consentgate-banner-1",
        "title": text("title"),
        "intro": banner_intro(texts, categories, mode),
        "gpc_note": text("gpc_note") if gpc else None,
        "buttons": [
            text("reject_all"),
            text("accept_all"),
            text("customise"),
            text("save_choices"),
        ],
        "labels": [text("categories_legend"), text("always_on"), text("policy_link")],
        "policy_version_label": text("policy_version").replace("{version}", policy_version),
        "categories": [[c.id, *category_text(texts, c), c.required] for c in categories],
        "policy_version": policy_version,
    }
    blob = json.dumps(shown, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------
# Accept-Language negotiation (RFC 9110 §12.5.4, "lookup"-style on primary subtags)

_LANGUAGE_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")
_MAX_HEADER = 4096
_MAX_RANGES = 64


def _parse_accept_language(header: str) -> list[tuple[str, float, int]]:
    """(lower-cased range, q, position) for every well-formed element; others skipped."""
    ranges: list[tuple[str, float, int]] = []
    for position, element in enumerate(header[:_MAX_HEADER].split(",")[:_MAX_RANGES]):
        parts = [p.strip() for p in element.split(";")]
        tag = parts[0]
        if not tag or not _LANGUAGE_RANGE.match(tag):
            continue
        q = 1.0
        valid = True
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q":
                continue  # unknown parameters are ignored
            value = value.strip()
            if not _QVALUE.match(value):
                valid = False
                break
            q = float(value)
        if valid:
            ranges.append((tag.lower(), q, position))
    return ranges


def negotiate_language(accept_language: str | None, available: Sequence[str], default: str) -> str:
    """Pick the best of ``available`` for an ``Accept-Language`` header; never raises.

    Higher q wins; ties keep header order. A range matches an available tag exactly or
    by primary subtag (``fr-CA`` → ``fr``, ``pt`` → ``pt-BR``). ``*`` matches any
    available language the header does not exclude. ``q=0`` excludes. Malformed
    elements are skipped; if nothing matches, ``default`` is returned.
    """
    if not accept_language or not available:
        return default
    try:
        ranges = _parse_accept_language(accept_language)
    except Exception:  # defensive: a header must never break a page
        return default
    lowered = [(a, a.lower()) for a in available]

    def primary(tag: str) -> str:
        return tag.split("-", 1)[0]

    excluded: set[str] = set()
    for tag, q, _ in ranges:
        if q == 0 and tag != "*":
            excluded.update(
                low for _, low in lowered if low == tag or ("-" not in tag and primary(low) == tag)
            )
    for tag, q, _ in sorted(ranges, key=lambda r: (-r[1], r[2])):
        if q == 0:
            continue
        if tag == "*":
            for original, low in lowered:
                if low not in excluded:
                    return original
            continue
        for original, low in lowered:  # exact match first
            if low == tag and low not in excluded:
                return original
        for original, low in lowered:  # then same primary language
            if primary(low) == primary(tag) and low not in excluded:
                return original
    return default
