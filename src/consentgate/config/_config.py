"""The :class:`Config` and the reading of the top-level keys; the sections are read by
_consent.py and _wall.py, each field by the one reader of _fields.py."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from consentgate.accounts.newsletter_lists import NewsletterList
from consentgate.accounts.settings import AccountsSettings
from consentgate.config._checks import (
    TRUSTED_PROXY_HEADERS,
    check_prefix,
    frame_ancestors,
    path_patterns,
    trusted_proxies,
)
from consentgate.config._consent import (
    read_categories,
    read_cookie_names,
    read_cookie_rules,
    read_languages,
    read_policy,
    read_regions,
    read_texts,
    refuse_rules_for_own_cookies,
)
from consentgate.config._fields import read_fields, table
from consentgate.config._mail import read_mail
from consentgate.config._newsletters import (
    check_newsletters_have_url,
    check_public_url,
    read_newsletters,
)
from consentgate.config._pages import PagesSettings, check_layout_path, read_pages
from consentgate.config._table import Table
from consentgate.config._wall import read_wall
from consentgate.consent.cookies import CookieRule
from consentgate.consent.settings import (
    SUPPORTED_LANGUAGES,
    Category,
    ConsentModeSettings,
    CookieNames,
    Policy,
    RegionMode,
    Regions,
    default_categories,
)
from consentgate.errors import ConfigError
from consentgate.mail.settings import MailSettings
from consentgate.wall.settings import WallSettings

MAX_CONSENT_LIFETIME_DAYS = 395  # CNIL: about 13 months at most, then ask again
SECRET_KEYS_ENV = "CONSENTGATE_SECRET_KEYS"  # noqa: S105 (a variable name, not a secret)
MIN_SECRET_KEY_LENGTH = 32
NO_SECRET_KEY = (
    f"no secret key set (in the configuration or {SECRET_KEYS_ENV}); "
    "generate one with `consentgate keygen`"
)

_LIFETIME = {"between": (1, MAX_CONSENT_LIFETIME_DAYS)}


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
    consent_lifetime_days: int = field(default=182, metadata=_LIFETIME)
    #: Read as consent_lifetime_days when not set (the loader derives it).
    reject_lifetime_days: int = field(default=182, metadata=_LIFETIME)
    regions: Regions = field(default_factory=Regions)
    languages: tuple[str, ...] = SUPPORTED_LANGUAGES
    default_language: str = "en"
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cookie_names: CookieNames = field(default_factory=CookieNames)
    consent_mode: ConsentModeSettings = field(default_factory=ConsentModeSettings)
    gpc_enabled: bool = field(default=True, metadata={"key": "gpc.enabled"})
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    controller_name: str = field(default="", metadata={"key": "controller.name"})
    controller_contact: str = field(default="", metadata={"key": "controller.contact"})
    controller_email: str = field(default="", metadata={"key": "controller.email"})
    controller_url: str = field(default="", metadata={"key": "controller.url"})
    jurisdiction: str = field(default="EU", metadata={"key": "controller.jurisdiction"})
    wall: WallSettings = field(default_factory=WallSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    #: Our reader pages set into the site's own page shell (``[pages]``, web/shell.py).
    pages: PagesSettings = field(default_factory=PagesSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    meter_url: str | None = None
    admin_token_sha256: str | None = field(default=None, metadata={"key": "admin.token_sha256"})
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
    #: Free pages for readers without a session are the same bytes for every reader of a
    #: consent class (consent/classes.py): when the app marks one public, a shared cache
    #: may keep one copy per class. False: every page we rewrite is private.
    shared_cache: bool = field(default=True, metadata={"key": "cache.shared"})
    #: MiB of whole pages kept rewritten, per process (rewrite/memo.py): a page served
    #: again byte for byte to readers of the same plan is not parsed again. 0: off.
    rewrite_memo_mb: int = field(
        default=32, metadata={"key": "cache.rewrite_memo_mb", "range": (0, 4096)}
    )
    #: The site's origin (``https://news.example``): links in mails are built on it.
    public_url: str = ""
    #: The newsletters readers may subscribe to (``[[newsletters]]``; docs/newsletters.md).
    newsletters: tuple[NewsletterList, ...] = ()

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
        check_prefix(self.prefix)
        check_layout_path(self.pages, self.prefix)
        trusted_proxies(list(self.trusted_proxies))
        if self.trusted_proxy_header not in TRUSTED_PROXY_HEADERS:
            raise ConfigError(
                "trusted_proxy_header", f"must be one of {', '.join(TRUSTED_PROXY_HEADERS)}"
            )
        if frame_ancestors(list(self.frame_ancestors)) != tuple(self.frame_ancestors):
            raise ConfigError(
                "frame_ancestors", "keywords must be written 'self' and 'none', lower-case"
            )
        if self.wall.meter.limit < 1:
            raise ConfigError("wall.meter.limit", "must be at least 1")
        public_url = check_public_url("public_url", self.public_url)
        check_newsletters_have_url(self.newsletters, public_url)
        if self.accounts.enabled and self.mail.transport == "smtp" and not public_url:
            # Without it a link would be built on the request's Host header, which the
            # requester writes: a reset asked for with "Host: evil.example" would mail
            # the owner a working link to the asker's server.
            raise ConfigError(
                "public_url",
                'needed when the accounts send mail ([mail] transport = "smtp"): the '
                "links in account mails are built on it (e.g. https://news.example)",
            )

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
    def optional_category_ids(self) -> frozenset[str]:
        """What a reader may grant or refuse: every category but the required ones."""
        return frozenset(c.id for c in self.categories if not c.required)

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


def _build(raw: Mapping[str, Any], base_dir: Path, *, require_secret_keys: bool) -> Config:
    root = Table(raw, "")
    try:
        config = _read(root, base_dir, require_secret_keys)
    except ConfigError as exc:
        # A misspelt key often surfaces first as its value missing ("unknown category ''"
        # for `categroy = …`): name the misspelling, not the symptom.
        misspelt = root.misspelling_of(exc.key)
        if misspelt is not None:
            raise misspelt from exc
        raise
    root.refuse_unknown()
    return config


def _read(raw: Mapping[str, Any], base_dir: Path, require_secret_keys: bool) -> Config:
    # Read first: the sections after them are checked against them.
    categories = read_categories(raw.get("categories"))
    category_ids = {c.id for c in categories}
    languages = read_languages(raw.get("languages", list(SUPPORTED_LANGUAGES)))
    cookie_names = read_cookie_names("cookie_names", table(raw, "cookie_names"))
    cookie_rules = read_cookie_rules(raw.get("cookies", []), category_ids)
    refuse_rules_for_own_cookies(cookie_rules, cookie_names)
    return read_fields(
        raw,
        Config,
        "",
        check={
            "database_url": lambda _, url: _database_url(url, base_dir),
            "policy": lambda key, section: read_policy(key, section, base_dir),
            "regions": read_regions,
            "mail": lambda key, section: read_mail(key, section, base_dir),
            "wall": lambda key, section: read_wall(key, section, category_ids, languages),
            "pages": read_pages,
            "meter_url": _meter_url,
            "admin_token_sha256": _admin_token,
            "trusted_proxies": lambda _, value: trusted_proxies(value),
            "frame_ancestors": lambda _, value: frame_ancestors(value),
            "exclude_paths": path_patterns,
            "public_url": check_public_url,
        },
        derive={"reject_lifetime_days": lambda values: values["consent_lifetime_days"]},
        secret_keys=_secret_keys(raw.get("secret_keys"), required=require_secret_keys),
        categories=categories,
        cookies=cookie_rules,
        languages=languages,
        texts=read_texts(raw.get("texts", {}), languages, category_ids),
        cookie_names=cookie_names,
        newsletters=read_newsletters(raw.get("newsletters"), (*languages, "en")),
    )


def _meter_url(key: str, url: str) -> str:
    """Redis for the meter counts and rate limits, shared by every worker and host."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(key, "must be a redis://, rediss:// or unix:// URL")
    _require_extra(key, "redis", "redis")
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


def _admin_token(key: str, value: str) -> str:
    """The dashboard's token, stored only as its SHA-256 (`consentgate admin-token`)."""
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ConfigError(
            key,
            "must be the SHA-256 (64 lower-case hex digits) of the admin token; "
            "`consentgate admin-token` prints a token and its hash",
        )
    return value


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
