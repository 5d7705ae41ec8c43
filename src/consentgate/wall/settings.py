"""The registration wall's settings (``[wall]``, its meter and crawler tables). Plain frozen
dataclasses with their defaults; ``consentgate.config`` reads them from TOML (fields,
defaults, ranges and choices come from here) and never the reverse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from consentgate.errors import ConfigError

AccessName = Literal["free", "metered", "registered"]
ACCESS_LEVELS: tuple[AccessName, ...] = ("free", "metered", "registered")

ShortArticle = Literal["cut", "wall_page", "free"]
SHORT_ARTICLE_CHOICES: tuple[ShortArticle, ...] = ("cut", "wall_page", "free")
MAX_LEAD_WORDS = 100_000
DEFAULT_SHORT_ARTICLE: ShortArticle = "cut"
DEFAULT_SHORT_ARTICLE_WORDS = 80

#: The texts of the call to action a site may replace per language (``[wall.cta.LANG]``).
CTA_KEYS = frozenset(
    {
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
        "verify_heading",
        "verify_body",
        "verify_label",
    }
)

_DEFAULT_REMOVE_SELECTORS = ("link[rel=amphtml]", "[data-consentgate-remove]")
_DEFAULT_CRAWLER_DOMAINS = ("googlebot.com", "google.com", "googleusercontent.com")


@dataclass(frozen=True, slots=True)
class AccessRuleSetting:
    """A path pattern (``/articles/*``; ``**`` spans segments) and its access level."""

    path: str
    access: AccessName


@dataclass(frozen=True, slots=True)
class MeterSettings:
    limit: int = field(default=3, metadata={"range": (1, 1000)})
    period_days: int = field(default=30, metadata={"range": (1, 366)})
    period: Literal["rolling", "calendar-month"] = "rolling"
    store: Literal["cookie", "server"] = "cookie"
    #: Read as max(10, limit) when not set (the loader derives it).
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


@dataclass(frozen=True, slots=True)
class WallSettings:
    """The registration wall: which responses are articles and how they are cut."""

    rules: tuple[AccessRuleSetting, ...] = ()
    default_access: AccessName = "free"
    article_selector: str = "div.article-body"
    paragraph_selector: str = "p"
    lead_paragraphs: int = field(default=2, metadata={"between": (0, 1000)})
    lead_words: int | None = field(default=None, metadata={"between": (1, MAX_LEAD_WORDS)})
    #: A container with fewer ``paragraph_selector`` matches than ``lead_paragraphs``: cut
    #: after ``short_article_words`` words ("cut"), send the wall page ("wall_page"), or send
    #: it whole, logged ("free").
    short_article: ShortArticle = DEFAULT_SHORT_ARTICLE
    short_article_words: int = field(
        default=DEFAULT_SHORT_ARTICLE_WORDS, metadata={"between": (0, MAX_LEAD_WORDS)}
    )
    remove_selectors: tuple[str, ...] = _DEFAULT_REMOVE_SELECTORS
    #: After the cut, look for the dropped text elsewhere in the page (a framework's page
    #: data) and fail closed on finding it (see docs/wall.md, "Echoes of the cut text").
    echo_guard: bool = True
    #: Read from ``article_selector``'s class when not set (the loader derives it).
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
