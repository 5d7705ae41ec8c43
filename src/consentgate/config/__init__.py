"""Loading and validating consentgate's configuration.

Operators write a TOML file (``consentgate.toml``); developers may pass the same keys
as keyword arguments. Either way the result is one immutable :class:`Config`, checked
once at start-up: a wrong value stops the app with a message that names the key and
the reason, instead of surfacing as odd behaviour on some reader's request.

The settings types live with their owners (``consent/settings.py``, ``wall/settings.py``,
``accounts/settings.py``, ``mail/settings.py``) and never import this package; it reads
them with one field reader (``_fields.py``) and re-exports them here, where callers have
always found them.
"""

from consentgate.accounts.settings import AccountsSettings
from consentgate.config._checks import TRUSTED_PROXY_HEADERS
from consentgate.config._config import (
    MAX_CONSENT_LIFETIME_DAYS,
    MIN_SECRET_KEY_LENGTH,
    NO_SECRET_KEY,
    SECRET_KEYS_ENV,
    Config,
)
from consentgate.config._pages import PagesSettings
from consentgate.config._table import unknown_key
from consentgate.consent.settings import (
    CONSENT_MODE_SIGNALS,
    REGION_MODES,
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
from consentgate.wall.settings import (
    ACCESS_LEVELS,
    DEFAULT_SHORT_ARTICLE,
    DEFAULT_SHORT_ARTICLE_WORDS,
    MAX_LEAD_WORDS,
    SHORT_ARTICLE_CHOICES,
    AccessName,
    AccessRuleSetting,
    CrawlerSettings,
    MeterSettings,
    ShortArticle,
    WallSettings,
)

__all__ = [
    "ACCESS_LEVELS",
    "CONSENT_MODE_SIGNALS",
    "DEFAULT_SHORT_ARTICLE",
    "DEFAULT_SHORT_ARTICLE_WORDS",
    "MAX_CONSENT_LIFETIME_DAYS",
    "MAX_LEAD_WORDS",
    "MIN_SECRET_KEY_LENGTH",
    "NO_SECRET_KEY",
    "REGION_MODES",
    "SECRET_KEYS_ENV",
    "SHORT_ARTICLE_CHOICES",
    "SUPPORTED_LANGUAGES",
    "TRUSTED_PROXY_HEADERS",
    "AccessName",
    "AccessRuleSetting",
    "AccountsSettings",
    "Category",
    "Config",
    "ConfigError",
    "ConsentModeSettings",
    "CookieNames",
    "CrawlerSettings",
    "MailSettings",
    "MeterSettings",
    "PagesSettings",
    "Policy",
    "RegionMode",
    "Regions",
    "ShortArticle",
    "WallSettings",
    "default_categories",
    "unknown_key",
]
