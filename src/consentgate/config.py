"""Loading and validating consentgate's configuration.

Operators write a TOML file (``consentgate.toml``); developers may pass the same keys
as keyword arguments. Either way the result is one immutable :class:`Config`, checked
once at start-up: a wrong value stops the app with a message that names the key and
the reason, instead of surfacing as odd behaviour on some reader's request.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from consentgate.consent.cookies import CookieRule

RegionMode = Literal["opt-in", "opt-out", "notice"]
REGION_MODES: tuple[RegionMode, ...] = ("opt-in", "opt-out", "notice")
SUPPORTED_LANGUAGES = ("en", "fr", "de", "es", "tr")
CONSENT_MODE_SIGNALS = (
    "ad_storage",
    "analytics_storage",
    "ad_user_data",
    "ad_personalization",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)
MAX_CONSENT_LIFETIME_DAYS = 395  # CNIL: about 13 months at most, then ask again
SECRET_KEYS_ENV = "CONSENTGATE_SECRET_KEYS"  # noqa: S105 (a variable name, not a secret)
MIN_SECRET_KEY_LENGTH = 32
NO_SECRET_KEY = (
    f"no secret key set (in the configuration or {SECRET_KEYS_ENV}); "
    "generate one with `consentgate keygen`"
)

_CATEGORY_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_COOKIE_NAME_PATTERN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z?\[\]]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Category:
    """A purpose readers consent to (or not): ``analytics``, ``marketing`` …"""

    id: str
    title: str
    description: str
    required: bool = False
    gpc: bool = False
    consent_mode: tuple[str, ...] = ()
    #: What the cookies are for, as the banner's intro says it: "measure our audience" in
    #: "We would like to use cookies to …". Empty: not named in the intro.
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """The privacy policy readers are told about; its text's SHA-256 is recorded."""

    version: str = "1"
    url: str = "/privacy"
    text_file: str | None = None
    text_sha256: str = ""


@dataclass(frozen=True, slots=True)
class CookieNames:
    consent: str = "cg_consent"
    csrf: str = "cg_csrf"
    meter: str = "cg_meter"
    session: str = "cg_session"


@dataclass(frozen=True, slots=True)
class Regions:
    """Which consent regime applies, chosen per country from a trusted header."""

    default: RegionMode = "opt-in"
    country_header: str | None = None
    countries: Mapping[str, RegionMode] = field(default_factory=dict)

    def mode_for(self, country: str | None) -> RegionMode:
        if country is None:
            return self.default
        return self.countries.get(country.upper(), self.default)


@dataclass(frozen=True, slots=True)
class ConsentModeSettings:
    enabled: bool = False
    wait_for_update_ms: int = field(
        default=500, metadata={"key": "wait_for_update", "range": (0, 10_000)}
    )


AccessName = Literal["free", "metered", "registered"]
ACCESS_LEVELS: tuple[AccessName, ...] = ("free", "metered", "registered")


@dataclass(frozen=True, slots=True)
class AccessRuleSetting:
    """A path pattern (``/articles/*``; ``**`` spans segments) and its access level."""

    path: str
    access: AccessName


_DEFAULT_REMOVE_SELECTORS = ("link[rel=amphtml]", "[data-consentgate-remove]")
_DEFAULT_CRAWLER_DOMAINS = ("googlebot.com", "google.com", "googleusercontent.com")


@dataclass(frozen=True, slots=True)
class MeterSettings:
    limit: int = field(default=3, metadata={"range": (1, 1000)})
    period_days: int = field(default=30, metadata={"range": (1, 366)})
    period: Literal["rolling", "calendar-month"] = "rolling"
    store: Literal["cookie", "server"] = "cookie"
    #: Read as max(10, limit) when not set (see _meter).
    network_limit: int = field(default=10, metadata={"range": (1, 100_000)})
    category: str = "necessary"
    on_store_error: Literal["cookie", "wall"] = "cookie"


@dataclass(frozen=True, slots=True)
class CrawlerSettings:
    enabled: bool = False
    domains: tuple[str, ...] = _DEFAULT_CRAWLER_DOMAINS
    ip_ranges: tuple[str, ...] = ()
    cache_seconds: int = field(default=3600, metadata={"range": (0, 86_400 * 7)})
    #: A DNS round trip's limit: 0 < t <= 30.
    timeout_seconds: float = field(default=2.0, metadata={"range": (0, 30), "above": True})


ShortArticle = Literal["cut", "wall_page", "free"]
SHORT_ARTICLE_CHOICES: tuple[ShortArticle, ...] = ("cut", "wall_page", "free")
MAX_LEAD_WORDS = 100_000
DEFAULT_SHORT_ARTICLE: ShortArticle = "cut"
DEFAULT_SHORT_ARTICLE_WORDS = 80


@dataclass(frozen=True, slots=True)
class WallSettings:
    """The registration wall: which responses are articles and how they are cut."""

    rules: tuple[AccessRuleSetting, ...] = ()
    default_access: AccessName = "free"
    article_selector: str = "div.article-body"
    paragraph_selector: str = "p"
    lead_paragraphs: int = 2
    lead_words: int | None = None
    #: A container with fewer ``paragraph_selector`` matches than ``lead_paragraphs``: cut
    #: after ``short_article_words`` words ("cut"), send the wall page ("wall_page"), or send
    #: it whole, logged ("free").
    short_article: ShortArticle = DEFAULT_SHORT_ARTICLE
    short_article_words: int = DEFAULT_SHORT_ARTICLE_WORDS
    remove_selectors: tuple[str, ...] = _DEFAULT_REMOVE_SELECTORS
    gated_class: str = "article-body"
    meter: MeterSettings = field(default_factory=MeterSettings)
    crawlers: CrawlerSettings = field(default_factory=CrawlerSettings)
    cta: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    register_url: str | None = None
    login_url: str | None = None

    def __post_init__(self) -> None:
        # Checked here too, so that a WallSettings built in code is as sound as one from TOML.
        if self.short_article not in SHORT_ARTICLE_CHOICES:
            raise ConfigError(
                "wall.short_article",
                f"must be one of {', '.join(SHORT_ARTICLE_CHOICES)}; got {self.short_article!r}",
            )
        if not 0 <= self.short_article_words <= MAX_LEAD_WORDS:
            raise ConfigError("wall.short_article_words", f"must be between 0 and {MAX_LEAD_WORDS}")


@dataclass(frozen=True, slots=True)
class AccountsSettings:
    """The built-in accounts, for sites that have none of their own."""

    enabled: bool = True
    min_password_length: int = field(default=10, metadata={"range": (8, 128)})
    session_lifetime_days: int = field(default=30, metadata={"range": (1, 395)})
    register_per_hour: int = field(default=5, metadata={"range": (1, 10_000)})
    login_per_15_minutes: int = field(default=10, metadata={"range": (1, 10_000)})
    #: Rate limits count an IPv6 client by its network of this prefix length (a
    #: subscriber gets a /64 or more), an IPv4 client by its address.
    ipv6_prefix: int = field(default=64, metadata={"range": (32, 128)})


def default_categories() -> tuple[Category, ...]:
    return (
        Category(
            "necessary",
            "Strictly necessary",
            "Keeps the site working and secure and remembers your cookie choices. Always on.",
            required=True,
            consent_mode=("security_storage",),
            purpose="keep the site working",
        ),
        Category(
            "preferences",
            "Preferences",
            "Remembers settings such as your language or the text size you chose.",
            consent_mode=("functionality_storage", "personalization_storage"),
            purpose="remember your preferences",
        ),
        Category(
            "analytics",
            "Audience measurement",
            "Counts visits and measures which articles are read, so that we can improve the site.",
            consent_mode=("analytics_storage",),
            purpose="measure our audience",
        ),
        Category(
            "marketing",
            "Advertising",
            "Lets us and our advertising partners show ads based on your interests "
            "and measure them.",
            gpc=True,
            consent_mode=("ad_storage", "ad_user_data", "ad_personalization"),
            purpose="show advertising",
        ),
    )


_BUILTIN_CATEGORIES = {c.id: c for c in default_categories()}


@dataclass(frozen=True, slots=True)
class Config:
    """Everything consentgate needs to know; build with :meth:`from_toml` or keywords."""

    secret_keys: tuple[str, ...] = ()
    database_url: str = "sqlite:///consentgate.db"
    prefix: str = "/consentgate"
    site_name: str = "This site"
    policy: Policy = field(default_factory=Policy)
    categories: tuple[Category, ...] = field(default_factory=default_categories)
    cookies: tuple[CookieRule, ...] = ()
    unknown_cookies: Literal["auto", "block", "allow"] = "auto"
    consent_lifetime_days: int = 182
    reject_lifetime_days: int = 182
    regions: Regions = field(default_factory=Regions)
    languages: tuple[str, ...] = SUPPORTED_LANGUAGES
    default_language: str = "en"
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cookie_names: CookieNames = field(default_factory=CookieNames)
    consent_mode: ConsentModeSettings = field(default_factory=ConsentModeSettings)
    gpc_enabled: bool = True
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    controller_name: str = ""
    controller_contact: str = ""
    controller_email: str = ""
    controller_url: str = ""
    jurisdiction: str = "EU"
    wall: WallSettings = field(default_factory=WallSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    meter_url: str | None = None
    admin_token_sha256: str | None = None
    #: Addresses or networks of the reverse proxies in front of the app: only a request
    #: from one of them may name the client in ``trusted_proxy_header``.
    trusted_proxies: tuple[str, ...] = ()
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    #: CSP ``frame-ancestors`` sources of the pages we render: who may frame them.
    #: ``("'none'",)``, the default, is nobody (and ``X-Frame-Options: DENY``).
    frame_ancestors: tuple[str, ...] = ("'none'",)
    #: Path patterns (``*`` one segment, ``**`` any) of pages that get no banner and no
    #: settings link: embeds, widgets. Consent is still enforced on them.
    exclude_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Invariants the rest of consentgate relies on, however the Config was built.

        ``from_toml`` and ``from_mapping`` check every key with precise messages; this
        catches a Config built directly (or changed with ``dataclasses.replace``) that
        would otherwise fail later, on some reader's request.
        """
        for index, secret in enumerate(self.secret_keys):
            if len(secret) < MIN_SECRET_KEY_LENGTH:
                raise ConfigError(f"secret_keys[{index}]", "too short (at least 32 characters)")
        for key in ("consent_lifetime_days", "reject_lifetime_days"):
            if not 1 <= getattr(self, key) <= MAX_CONSENT_LIFETIME_DAYS:
                raise ConfigError(key, f"must be between 1 and {MAX_CONSENT_LIFETIME_DAYS}")
        necessary = self.category("necessary")
        if necessary is None or not necessary.required:
            raise ConfigError("categories", "must include 'necessary' with required = true")
        known = set(self.category_ids)
        for index, rule in enumerate(self.cookies):
            if rule.category not in known:
                raise ConfigError(
                    f"cookies[{index}].category", f"unknown category {rule.category!r}"
                )
        if self.wall.meter.category not in known:
            raise ConfigError(
                "wall.meter.category", f"unknown category {self.wall.meter.category!r}"
            )
        if self.default_language not in self.languages:
            raise ConfigError("default_language", f"{self.default_language!r} is not in languages")
        _prefix(self.prefix)
        _trusted_proxies(list(self.trusted_proxies))
        if self.trusted_proxy_header not in TRUSTED_PROXY_HEADERS:
            raise ConfigError(
                "trusted_proxy_header", f"must be one of {', '.join(TRUSTED_PROXY_HEADERS)}"
            )
        if _frame_ancestors(list(self.frame_ancestors)) != tuple(self.frame_ancestors):
            raise ConfigError(
                "frame_ancestors", "keywords must be written 'self' and 'none', lower-case"
            )
        if self.wall.meter.limit < 1:
            raise ConfigError("wall.meter.limit", "must be at least 1")

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, require_secret_keys: bool = True) -> Config:
        """Read and validate a TOML file; relative paths in it are relative to it.

        Without a secret key (in the file or ``CONSENTGATE_SECRET_KEYS``) the middleware
        cannot run, so loading refuses it unless ``require_secret_keys=False`` (operator
        commands that only read the database)."""
        file = Path(path)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(file), "configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML ({exc})") from None
        return cls.from_mapping(raw, base_dir=file.parent, require_secret_keys=require_secret_keys)

    @classmethod
    def from_mapping(
        cls,
        raw: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        require_secret_keys: bool = True,
    ) -> Config:
        """Build from the same keys as the TOML file (a dict of plain values)."""
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return _build(raw, base, require_secret_keys=require_secret_keys)

    # -- queries used on the hot path ----------------------------------------------
    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    @property
    def required_category_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.categories if c.required)

    @property
    def gpc_category_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.categories if c.gpc)

    def category(self, category_id: str) -> Category | None:
        for category in self.categories:
            if category.id == category_id:
                return category
        return None

    def blocks_unknown_cookies(self, mode: RegionMode) -> bool:
        if self.unknown_cookies == "auto":
            return mode == "opt-in"
        return self.unknown_cookies == "block"


# ---------------------------------------------------------------------------------
# Validation. Each helper names the key it checks, so errors point at the TOML line.


class _Table(Mapping[str, Any]):
    """A table of the configuration as the readers see it. It remembers the keys they ask
    for, so that afterwards a key no reader asked for is refused, at every level and in list
    items alike: a misspelt key must not silently leave its default in place
    (``[policy] verison = "2"`` would keep version 1 and ask nobody to accept again).

    A reader that iterates a table (languages, countries) checks its keys itself.
    """

    __slots__ = ("_asked", "_children", "_data", "_iterated", "_path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = data
        self._path = path
        self._asked: set[str] = set()
        self._iterated = False
        self._children: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        self._asked.add(key)
        value = self._data[key]
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._wrap(self._key(key), value)
        return child

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._asked.add(key)
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        self._iterated = True
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    @staticmethod
    def _wrap(path: str, value: Any) -> Any:
        if isinstance(value, Mapping) and not isinstance(value, _Table):
            return _Table(value, path)
        if isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            return [
                _Table(item, f"{path}[{index}]") if isinstance(item, Mapping) else item
                for index, item in enumerate(value)
            ]
        return value

    def _tables(self) -> Iterator[_Table]:
        yield self
        for child in self._children.values():
            items = child if isinstance(child, list) else [child]
            for item in items:
                if isinstance(item, _Table):
                    yield from item._tables()

    def refuse_unknown(self) -> None:
        """Raise for the first key no reader asked for, suggesting the nearest known one."""
        for table in self._tables():
            if table._iterated:
                continue
            for key in table._data:
                if key not in table._asked:
                    raise unknown_key(table._key(key), key, table._asked)

    def misspelling_of(self, failed: str) -> ConfigError | None:
        """The error for an unasked key that looks like ``failed`` (a full key path) in the
        table that holds it, if there is one."""
        parent, _, name = failed.rpartition(".")
        for table in self._tables():
            if table._path != parent or table._iterated:
                continue
            unasked = [key for key in table._data if key not in table._asked]
            close = difflib.get_close_matches(name, unasked, n=1, cutoff=0.75)
            if close:
                return unknown_key(table._key(close[0]), close[0], table._asked | {name})
        return None


def unknown_key(path: str, key: str, known: Iterable[str]) -> ConfigError:
    """The one wording for a key nobody reads, with the nearest known key when one is close."""
    choices = sorted(known)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return ConfigError(path, f"unknown key — did you mean {close[0]!r}?")
    if choices:
        return ConfigError(path, f"unknown key; known: {', '.join(choices)}")
    return ConfigError(path, "unknown key; this table takes no keys")


def _build(raw: Mapping[str, Any], base_dir: Path, *, require_secret_keys: bool) -> Config:
    table = _Table(raw, "")
    try:
        config = _read(table, base_dir, require_secret_keys)
    except ConfigError as exc:
        # A misspelt key often surfaces first as its value missing ("unknown category ''"
        # for `categroy = …`): name the misspelling, not the symptom.
        misspelt = table.misspelling_of(exc.key)
        if misspelt is not None:
            raise misspelt from exc
        raise
    table.refuse_unknown()
    return config


def _read(raw: Mapping[str, Any], base_dir: Path, require_secret_keys: bool) -> Config:
    categories = _categories(raw.get("categories"))
    category_ids = {c.id for c in categories}
    languages = _languages(raw.get("languages", list(SUPPORTED_LANGUAGES)))
    default_language = _string(raw, "default_language", "en")
    if default_language not in languages:
        raise ConfigError("default_language", f"{default_language!r} is not in languages")
    consent_days = _int_in_range(raw, "consent_lifetime_days", 182, 1, MAX_CONSENT_LIFETIME_DAYS)
    cookie_names = _cookie_names(_table(raw, "cookie_names"))
    cookie_rules = _cookie_rules(raw.get("cookies", []), category_ids)
    _refuse_rules_for_own_cookies(cookie_rules, cookie_names)
    gpc = _table(raw, "gpc")
    controller = _table(raw, "controller")
    return Config(
        secret_keys=_secret_keys(raw.get("secret_keys"), required=require_secret_keys),
        database_url=_database_url(
            _string(raw, "database_url", "sqlite:///consentgate.db"), base_dir
        ),
        prefix=_prefix(_string(raw, "prefix", "/consentgate")),
        site_name=_string(raw, "site_name", "This site"),
        policy=_policy(_table(raw, "policy"), base_dir),
        categories=categories,
        cookies=cookie_rules,
        unknown_cookies=_choice(raw, "unknown_cookies", "auto", ("auto", "block", "allow")),  # type: ignore[arg-type]
        consent_lifetime_days=consent_days,
        reject_lifetime_days=_int_in_range(
            raw, "reject_lifetime_days", consent_days, 1, MAX_CONSENT_LIFETIME_DAYS
        ),
        regions=_regions(_table(raw, "regions")),
        languages=languages,
        default_language=default_language,
        texts=_texts(raw.get("texts", {}), languages, category_ids),
        cookie_names=cookie_names,
        consent_mode=_consent_mode(_table(raw, "consent_mode")),
        gpc_enabled=_bool(gpc, "enabled", True, prefix="gpc."),
        secure_cookies=_choice(raw, "secure_cookies", "auto", ("auto", "always", "never")),  # type: ignore[arg-type]
        controller_name=_string(controller, "name", "", prefix="controller."),
        controller_contact=_string(controller, "contact", "", prefix="controller."),
        controller_email=_string(controller, "email", "", prefix="controller."),
        controller_url=_string(controller, "url", "", prefix="controller."),
        jurisdiction=_string(controller, "jurisdiction", "EU", prefix="controller."),
        wall=_wall(_table(raw, "wall"), category_ids, languages),
        accounts=_accounts(_table(raw, "accounts")),
        meter_url=_meter_url(raw),
        admin_token_sha256=_admin_token(_table(raw, "admin")),
        trusted_proxies=_trusted_proxies(raw.get("trusted_proxies", [])),
        trusted_proxy_header=_choice(  # type: ignore[arg-type]
            raw, "trusted_proxy_header", "x-forwarded-for", TRUSTED_PROXY_HEADERS
        ),
        frame_ancestors=_frame_ancestors(raw.get("frame_ancestors", ["'none'"])),
        exclude_paths=_path_patterns("exclude_paths", raw.get("exclude_paths", [])),
    )


TRUSTED_PROXY_HEADERS = ("x-forwarded-for", "forwarded")


def _path_patterns(key: str, value: Any) -> tuple[str, ...]:
    # Imported here: the wall's module owns the pattern language; config only checks it.
    from consentgate.wall.access import compile_path_pattern

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, 'must be a list of path patterns such as "/embed/**"')
    for index, pattern in enumerate(value):
        try:
            compile_path_pattern(pattern)
        except ValueError as exc:
            raise ConfigError(f"{key}[{index}]", str(exc)) from None
    return tuple(value)


def _trusted_proxies(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR networks (``10.0.0.0/8``, ``2001:db8::/32``, ``127.0.0.1``)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError("trusted_proxies", "must be a list of addresses or networks")
    for index, entry in enumerate(value):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies[{index}]",
                f"{entry!r} is not an address or network such as 10.0.0.0/8",
            ) from None
    return tuple(entry.strip() for entry in value)


# CSP source expressions a frame-ancestors list may hold (CSP Level 3, ancestor-source-
# list): 'self', a scheme (https:), or a host with optional scheme, port and path
# (https://*.example.com:8443/embed). Hosts are letters, digits and '-' (IDNs in their
# xn-- form); IPv6 literals are not source expressions.
_CSP_SCHEME_SOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CSP_HOST_SOURCE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?"
    r"(?:\*|(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?::(?:[0-9]+|\*))?"
    r"(?:/(?!/)[!$&'()*+=:@%/~A-Za-z0-9._-]*)?"  # not "//": https//x is a typo
)
_CSP_KEYWORDS = ("'self'", "'none'")


def _frame_ancestors(value: Any) -> tuple[str, ...]:
    """Who may frame our pages: ``["'none'"]`` (nobody), or CSP sources such as
    ``["'self'", "https://partner.example"]``. Each entry is one source expression:
    no ``;`` or ``,`` (they would end the directive or the policy, and let the list
    add directives of its own), no whitespace (it separates sources), nothing outside
    printable ASCII."""
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(
            "frame_ancestors",
            "must be a non-empty list of CSP sources, e.g. [\"'none'\"] or [\"'self'\"]",
        )
    sources: list[str] = []
    for index, entry in enumerate(value):
        key = f"frame_ancestors[{index}]"
        if not entry:
            raise ConfigError(key, "is empty: give a CSP source such as https://example.com")
        bad = next((ch for ch in entry if ch in ";," or not "!" <= ch <= "~"), None)
        if bad is not None:
            raise ConfigError(
                key,
                f"{entry!r} holds {bad!r}: one CSP source per entry, printable ASCII, "
                "without ';', ',' or whitespace",
            )
        if entry.lower() in ("self", "none"):
            raise ConfigError(key, f"write the keyword in single quotes: \"'{entry.lower()}'\"")
        if entry.startswith("'"):
            if entry.lower() not in _CSP_KEYWORDS:
                raise ConfigError(
                    key, f"{entry!r}: the only keywords frame-ancestors takes are 'self' and 'none'"
                )
            entry = entry.lower()
        elif not (_CSP_SCHEME_SOURCE.fullmatch(entry) or _CSP_HOST_SOURCE.fullmatch(entry)):
            raise ConfigError(
                key,
                f"{entry!r} is not a CSP source (e.g. https://example.com, "
                "https://*.example.com, https:)",
            )
        sources.append(entry)
    if "'none'" in sources and len(sources) > 1:
        raise ConfigError("frame_ancestors", "'none' must be the only entry when it is given")
    return tuple(sources)


def _meter_url(raw: Mapping[str, Any]) -> str | None:
    """Redis for the meter counts and rate limits, shared by every worker and host."""
    if "meter_url" not in raw:
        return None
    url = _string(raw, "meter_url", "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("meter_url", "must be a redis://, rediss:// or unix:// URL")
    _require_extra("meter_url", "redis", "redis")
    return url


def _require_extra(key: str, extra: str, *modules: str) -> None:
    """An optional extra missing is a configuration mistake: say so at start-up, not as a
    500 on every request once the first one tries to connect."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(
                key,
                f"needs the {extra} extra: pip install 'consentgate[{extra}]' "
                f"(module {module!r} is not installed)",
            )


def _admin_token(raw: Mapping[str, Any]) -> str | None:
    """The dashboard's token, stored only as its SHA-256 (`consentgate admin-token`)."""
    value = raw.get("token_sha256")
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ConfigError(
            "admin.token_sha256",
            "must be the SHA-256 (64 lower-case hex digits) of the admin token; "
            "`consentgate admin-token` prints a token and its hash",
        )
    return value


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    return value


def _string(raw: Mapping[str, Any], key: str, default: str, *, prefix: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(prefix + key, f"must be a string, not {type(value).__name__}")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool, *, prefix: str = "") -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(prefix + key, "must be true or false")
    return value


def _int_in_range(
    raw: Mapping[str, Any], key: str, default: int, low: int, high: int, *, prefix: str = ""
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(prefix + key, "must be a whole number")
    if not low <= value <= high:
        raise ConfigError(prefix + key, f"must be between {low} and {high}, got {value}")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, choices: Sequence[str]) -> str:
    value = _string(raw, key, default)
    if value not in choices:
        raise ConfigError(key, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


_Settings = TypeVar("_Settings")


def _read_fields(
    raw: Mapping[str, Any],
    cls: type[_Settings],
    prefix: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    **read: Any,
) -> _Settings:
    """Build the settings dataclass ``cls`` from its table: each field's default, type and
    choices come from the dataclass itself (``bool``, ``int``, ``float``, ``str`` or a
    ``Literal`` of strings; ``metadata["range"]`` bounds a number, ``"above"`` makes its
    low end exclusive, ``"key"`` names a TOML key that differs from the field). Fields
    in ``read`` the caller has read and checked itself; ``defaults`` replaces a default that
    depends on another value. Otherwise the defaults live in one place: the dataclass."""
    hints = typing.get_type_hints(cls)
    values = dict(read)
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in values:
            continue
        key = spec.metadata.get("key", spec.name)
        if defaults is not None and spec.name in defaults:
            default = defaults[spec.name]
        elif (
            spec.default is dataclasses.MISSING and spec.default_factory is not dataclasses.MISSING
        ):
            default = spec.default_factory()
        else:
            default = spec.default
        values[spec.name] = _checked(
            prefix + key, raw.get(key, default), hints[spec.name], spec.metadata
        )
    return cls(**values)


def _checked(key: str, value: Any, hint: Any, metadata: Mapping[str, Any]) -> Any:
    """``value`` if it is what ``hint`` says, else the ConfigError naming ``key``."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {type(value).__name__}")
        return value
    if hint is int or hint is float:
        number_types = (int,) if hint is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types):
            raise ConfigError(key, "must be a whole number" if hint is int else "must be a number")
        if "range" in metadata:
            low, high = metadata["range"]
            above = metadata.get("above", False)
            if not ((low < value) if above else (low <= value)) or value > high:
                sign = "<" if above else "<="
                raise ConfigError(key, f"must be {low} {sign} value <= {high}, got {value}")
        return hint(value)
    raise TypeError(f"{key}: no reader for a field of type {hint!r}")  # a programming error


def _secret_keys(value: Any, *, required: bool) -> tuple[str, ...]:
    """Newest key first: it signs; the older ones still verify during a rotation."""
    if value is None:
        env = os.environ.get(SECRET_KEYS_ENV, "")
        value = [k.strip() for k in env.split(",") if k.strip()]
        key = SECRET_KEYS_ENV
    else:
        key = "secret_keys"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        raise ConfigError(key, "must be a list of strings, newest first")
    keys = tuple(value)
    for index, secret in enumerate(keys):
        if len(secret) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"{key}[{index}]",
                f"too short ({len(secret)} characters); use at least {MIN_SECRET_KEY_LENGTH} "
                "random characters, e.g. from `consentgate keygen`",
            )
    if required and not keys:
        raise ConfigError("secret_keys", NO_SECRET_KEY)
    return keys


def _database_url(url: str, base_dir: Path) -> str:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:" and not path.startswith("/"):
            return "sqlite:///" + str((base_dir / path).resolve())
        return url
    if url.startswith(("postgresql://", "postgres://")):
        _require_extra("database_url", "postgres", "psycopg", "psycopg_pool")
        return url
    raise ConfigError(
        "database_url", f"unsupported URL {url!r}; use sqlite:///PATH or postgresql://…"
    )


def _prefix(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise ConfigError("prefix", f"must start with '/' and not end with it, got {prefix!r}")
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
        raise ConfigError("prefix", f"may hold only URL-safe path segments, got {prefix!r}")
    return prefix


def _policy(raw: Mapping[str, Any], base_dir: Path) -> Policy:
    version = _string(raw, "version", "1", prefix="policy.")
    if not version.strip():
        raise ConfigError("policy.version", "must not be empty")
    url = _string(raw, "url", "/privacy", prefix="policy.")
    text_file = raw.get("text_file")
    digest = hashlib.sha256(f"{version}\n{url}".encode()).hexdigest()
    if text_file is not None:
        if not isinstance(text_file, str):
            raise ConfigError("policy.text_file", "must be a path string")
        path = base_dir / text_file
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ConfigError("policy.text_file", f"cannot read {path}: {exc.strerror}") from None
        text_file = str(path)
    return Policy(version=version, url=url, text_file=text_file, text_sha256=digest)


def _categories(value: Any) -> tuple[Category, ...]:
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
        category_id = _string(item, "id", "", prefix=key + ".")
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
                title=_string(item, "title", base.title, prefix=key + "."),
                description=_string(item, "description", base.description, prefix=key + "."),
                purpose=_string(item, "purpose", base.purpose, prefix=key + "."),
                required=_bool(item, "required", base.required, prefix=key + "."),
                gpc=_bool(item, "gpc", base.gpc, prefix=key + "."),
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


def _cookie_rules(value: Any, category_ids: set[str]) -> tuple[CookieRule, ...]:
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
        name = _string(item, "name", "", prefix=key + ".")
        if not _COOKIE_NAME_PATTERN.match(name):
            raise ConfigError(key + ".name", f"not a cookie name or glob: {name!r}")
        category = _string(item, "category", "", prefix=key + ".")
        if category not in category_ids:
            raise ConfigError(key + ".category", f"unknown category {category!r}")
        path = _string(item, "path", "/", prefix=key + ".")
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


def _refuse_rules_for_own_cookies(rules: Sequence[CookieRule], names: CookieNames) -> None:
    """Our cookies are strictly necessary by definition; a rule must not say otherwise."""
    own = {names.consent, names.csrf, names.session, names.meter}
    for index, rule in enumerate(rules):
        if rule.pattern in own:
            raise ConfigError(
                f"cookies[{index}].name",
                f"{rule.pattern!r} is consentgate's own cookie (always necessary); remove the rule",
            )


def _regions(raw: Mapping[str, Any]) -> Regions:
    default = raw.get("default", "opt-in")
    if default not in REGION_MODES:
        raise ConfigError("regions.default", f"must be one of {', '.join(REGION_MODES)}")
    header = raw.get("country_header")
    if header is not None and (not isinstance(header, str) or not _HEADER_NAME.match(header)):
        raise ConfigError(
            "regions.country_header", "must be an HTTP header name, e.g. CF-IPCountry"
        )
    countries_raw = raw.get("countries", {})
    if not isinstance(countries_raw, Mapping):
        raise ConfigError("regions.countries", "must be a table of COUNTRY = MODE")
    countries: dict[str, RegionMode] = {}
    for country, mode in countries_raw.items():
        if not _COUNTRY.match(str(country).upper()):
            raise ConfigError(f"regions.countries.{country}", "must be an ISO 3166-1 alpha-2 code")
        if mode not in REGION_MODES:
            raise ConfigError(
                f"regions.countries.{country}", f"must be one of {', '.join(REGION_MODES)}"
            )
        countries[str(country).upper()] = mode
    if countries and header is None:
        raise ConfigError("regions.country_header", "needed when regions.countries is set")
    return Regions(
        default=default, country_header=header.lower() if header else None, countries=countries
    )


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError("languages", "must be a non-empty list of language codes")
    for lang in value:
        if lang not in SUPPORTED_LANGUAGES:
            raise ConfigError(
                "languages",
                f"{lang!r} has no built-in texts; supported: {', '.join(SUPPORTED_LANGUAGES)}",
            )
    return tuple(value)


def _texts(
    value: Any, languages: Iterable[str], category_ids: Iterable[str]
) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, Mapping):
        raise ConfigError("texts", "must be a table of LANGUAGE = { key = text }")
    # Imported here: texts.py holds the built-in wording, config only checks keys.
    from consentgate.consent.texts import TEXT_KEYS

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


def _cookie_names(raw: Mapping[str, Any]) -> CookieNames:
    names = {}
    for key, default in (
        ("consent", "cg_consent"),
        ("csrf", "cg_csrf"),
        ("meter", "cg_meter"),
        ("session", "cg_session"),
    ):
        name = _string(raw, key, default, prefix="cookie_names.")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"cookie_names.{key}", f"not a safe cookie name: {name!r}")
        names[key] = name
    if len(set(names.values())) != len(names):
        raise ConfigError("cookie_names", "each cookie needs its own name")
    return CookieNames(**names)


def _consent_mode(raw: Mapping[str, Any]) -> ConsentModeSettings:
    return _read_fields(raw, ConsentModeSettings, "consent_mode.")


# -- the registration wall -------------------------------------------------------

_CTA_KEYS = {
    "heading",
    "meter_heading",
    "body",
    "benefits",
    "register_label",
    "sign_in_prompt",
    "sign_in_label",
    "policy_heading",
    "policy_body",
    "policy_label",
}


def _wall(raw: Mapping[str, Any], category_ids: set[str], languages: Sequence[str]) -> WallSettings:
    article_selector = _selector(raw, "article_selector", "div.article-body")
    lead_words = raw.get("lead_words")
    if lead_words is not None:
        lead_words = _int_in_range(raw, "lead_words", 0, 1, 100_000, prefix="wall.")
    remove = raw.get("remove_selectors", list(_DEFAULT_REMOVE_SELECTORS))
    if not isinstance(remove, list):
        raise ConfigError("wall.remove_selectors", "must be a list of selectors")
    for index, selector in enumerate(remove):
        _check_selector(f"wall.remove_selectors[{index}]", selector)
    return WallSettings(
        rules=_access_rules(raw.get("rules", [])),
        default_access=_access(raw, "default_access", "free", "wall.default_access"),
        article_selector=article_selector,
        paragraph_selector=_selector(raw, "paragraph_selector", "p"),
        lead_paragraphs=_int_in_range(raw, "lead_paragraphs", 2, 0, 1000, prefix="wall."),
        lead_words=lead_words,
        short_article=_short_article(raw),
        short_article_words=_int_in_range(
            raw,
            "short_article_words",
            DEFAULT_SHORT_ARTICLE_WORDS,
            0,
            MAX_LEAD_WORDS,
            prefix="wall.",
        ),
        remove_selectors=tuple(remove),
        gated_class=_gated_class(raw, article_selector),
        meter=_meter(_table(raw, "meter"), category_ids),
        crawlers=_crawlers(_table(raw, "crawlers")),
        cta=_cta(raw.get("cta", {}), languages),
        register_url=_optional_url(raw, "register_url"),
        login_url=_optional_url(raw, "login_url"),
    )


def _short_article(raw: Mapping[str, Any]) -> ShortArticle:
    value = raw.get("short_article", DEFAULT_SHORT_ARTICLE)
    if value not in SHORT_ARTICLE_CHOICES:
        raise ConfigError(
            "wall.short_article",
            f"must be one of {', '.join(SHORT_ARTICLE_CHOICES)}; got {value!r}",
        )
    return value  # type: ignore[no-any-return]


def _optional_url(raw: Mapping[str, Any], key: str) -> str | None:
    """Sites with their own accounts point the CTA at their own sign-up and sign-in."""
    if key not in raw:
        return None
    url = _string(raw, key, "", prefix="wall.")
    if not (url.startswith("/") or url.startswith(("https://", "http://"))):
        raise ConfigError(f"wall.{key}", f"must be a path or an http(s) URL, got {url!r}")
    if "?" in url:
        raise ConfigError(f"wall.{key}", "must not carry a query: ?next= is added to it")
    return url


def _check_selector(key: str, selector: Any) -> str:
    # Imported here: config validates selectors with the rewriter's own parser, once.
    from consentgate.rewrite import SelectorError, compile_selector

    if not isinstance(selector, str):
        raise ConfigError(key, "must be a selector string")
    try:
        compile_selector(selector)
    except SelectorError as exc:
        raise ConfigError(key, str(exc)) from None
    return str(selector)


def _selector(raw: Mapping[str, Any], key: str, default: str) -> str:
    return _check_selector(f"wall.{key}", raw.get(key, default))


def _gated_class(raw: Mapping[str, Any], article_selector: str) -> str:
    """Google's paywall markup names the gated part by a class: take the selector's."""
    if "gated_class" in raw:
        value = _string(raw, "gated_class", "", prefix="wall.")
        if not re.fullmatch(r"[A-Za-z_-][A-Za-z0-9_-]*", value):
            raise ConfigError("wall.gated_class", f"must be a CSS class name, got {value!r}")
        return value
    classes = re.findall(
        r"\.([A-Za-z_-][A-Za-z0-9_-]*)", article_selector.split(",")[0].split()[-1]
    )
    if not classes:
        raise ConfigError(
            "wall.gated_class",
            "needed when wall.article_selector has no class (Google's paywall markup "
            "identifies the gated section by a class)",
        )
    return str(classes[0])


def _access(raw: Mapping[str, Any], key: str, default: str, full_key: str) -> AccessName:
    value = raw.get(key, default)
    if value not in ACCESS_LEVELS:
        raise ConfigError(full_key, f"must be one of {', '.join(ACCESS_LEVELS)}; got {value!r}")
    return value  # type: ignore[no-any-return]


def _access_rules(value: Any) -> tuple[AccessRuleSetting, ...]:
    if not isinstance(value, list):
        raise ConfigError("wall.rules", "must be a list of tables with path and access")
    rules = []
    for index, item in enumerate(value):
        key = f"wall.rules[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(key, "must be a table with path and access")
        path = _string(item, "path", "", prefix=key + ".")
        if not path.startswith("/"):
            raise ConfigError(key + ".path", f"must start with '/', got {path!r}")
        rules.append(AccessRuleSetting(path, _access(item, "access", "", key + ".access")))
    return tuple(rules)


def _meter(raw: Mapping[str, Any], category_ids: set[str]) -> MeterSettings:
    prefix = "wall.meter."
    category = _string(raw, "category", "necessary", prefix=prefix)
    if category not in category_ids:
        raise ConfigError(prefix + "category", f"unknown category {category!r}")
    # The network limit's default follows the reader limit, read first.
    limit = _read_fields(raw, MeterSettings, prefix, category=category, network_limit=0).limit
    meter = _read_fields(
        raw, MeterSettings, prefix, defaults={"network_limit": max(10, limit)}, category=category
    )
    if meter.network_limit < meter.limit:
        raise ConfigError(prefix + "network_limit", "must be at least the per-reader limit")
    return meter


def _crawlers(raw: Mapping[str, Any]) -> CrawlerSettings:
    import ipaddress

    prefix = "wall.crawlers."
    domains = raw.get("domains", list(_DEFAULT_CRAWLER_DOMAINS))
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise ConfigError(prefix + "domains", "must be a list of domain names")
    ranges = raw.get("ip_ranges", [])
    if not isinstance(ranges, list):
        raise ConfigError(prefix + "ip_ranges", "must be a list of CIDR ranges")
    for index, cidr in enumerate(ranges):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (ValueError, TypeError):
            raise ConfigError(f"{prefix}ip_ranges[{index}]", f"not an IP range: {cidr!r}") from None
    return _read_fields(
        raw,
        CrawlerSettings,
        prefix,
        domains=tuple(d.lower().strip(".") for d in domains),
        ip_ranges=tuple(ranges),
    )


def _cta(value: Any, languages: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        raise ConfigError("wall.cta", "must be a table of LANGUAGE = { heading = …, … }")
    result: dict[str, dict[str, Any]] = {}
    for lang, overrides in value.items():
        key = f"wall.cta.{lang}"
        if lang not in languages:
            raise ConfigError(key, "language not listed in languages")
        if not isinstance(overrides, Mapping):
            raise ConfigError(key, "must be a table")
        for text_key, text in overrides.items():
            if text_key not in _CTA_KEYS:
                raise unknown_key(f"{key}.{text_key}", text_key, _CTA_KEYS)
            if text_key == "benefits":
                if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                    raise ConfigError(f"{key}.benefits", "must be a list of strings")
            elif not isinstance(text, str):
                raise ConfigError(f"{key}.{text_key}", "must be a string")
        result[lang] = dict(overrides)
    return result


def _accounts(raw: Mapping[str, Any]) -> AccountsSettings:
    return _read_fields(raw, AccountsSettings, "accounts.")
