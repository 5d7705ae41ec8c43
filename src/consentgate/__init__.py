"""consentgate: cookie consent enforced on the server, and a free-registration wall.

Wrap any ASGI app::

    from consentgate import ConsentGate, Config
    app = ConsentGate(app, config=Config.from_toml("consentgate.toml"))
"""

from consentgate.api import SiteAPI
from consentgate.config import Category, Config, ConfigError
from consentgate.consent.cookies import CookieRule
from consentgate.consent.state import Consent
from consentgate.middleware import ConsentGate
from consentgate.web.errors import Failure

__all__ = [
    "Category",
    "Config",
    "ConfigError",
    "Consent",
    "ConsentGate",
    "CookieRule",
    "Failure",
    "SiteAPI",
]
__version__ = "0.1.0"
