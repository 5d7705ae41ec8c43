"""The consent settings: categories, the privacy policy, cookie names, regions, Consent
Mode. Plain frozen dataclasses, with their defaults; ``consentgate.config`` reads them from
TOML (fields, defaults and choices come from here) and never the reverse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

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
    #: Computed by the loader (of the text file, else of version and URL), not a key.
    text_sha256: str = ""


@dataclass(frozen=True, slots=True)
class CookieNames:
    consent: str = "cg_consent"
    csrf: str = "cg_csrf"
    meter: str = "cg_meter"
    session: str = "cg_session"
    #: Unsigned, not a secret: the reader's consent class, for a CDN's cache key.
    consent_class: str = "cg_class"


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
