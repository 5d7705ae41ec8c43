"""What one probe run is told: the defaults the CLI shows, the leak thresholds, the
headers it sends as a browser or a crawler, and :class:`ProbeSettings`."""

from __future__ import annotations

from dataclasses import dataclass

from consentgate.config import Config, CookieNames

# The defaults (the CLI shows these).
DEFAULT_TIMEOUT = 10.0  # seconds, per request: connect, each read, and the whole body
DEFAULT_MAX_REQUESTS = 1000  # one article costs about 4 x 34 requests plus the spending
DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # per answer body, decoded too: a bomb stays small
DEFAULT_PREFIX = Config().prefix
DEFAULT_COOKIES = CookieNames()
PASSWORD_ENV = "CONSENTGATE_PROBE_PASSWORD"  # noqa: S105 - a variable name, not a secret

# A leak is a shared run of at least MIN_RUN characters. Windows of WINDOW characters
# taken every STRIDE characters catch every run of WINDOW + STRIDE - 1 or more: any
# such run contains one window whole.
WINDOW = 32
STRIDE = 8
MIN_RUN = WINDOW + STRIDE - 1
# A HEAD length or Content-Range total may drift a little between two answers of the
# same page (a token, a date); the hidden text is longer than that.
LENGTH_SLACK = 256

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 consentgate-probe"
)
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT_UA = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
GOOGLEBOT_IP = "66.249.66.1"  # inside Google's published Googlebot ranges
BINGBOT_IP = "157.55.39.1"  # inside Bing's published Bingbot ranges
GOOGLE_REFERER = "https://www.google.com/"
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    base_url: str
    paths: tuple[str, ...]
    email: str | None = None
    password: str | None = None
    session_cookie: str | None = None  # "NAME=VALUE" or a bare value of the session cookie
    spend: tuple[str, ...] = ()
    prefix: str = DEFAULT_PREFIX
    meter_cookie: str = DEFAULT_COOKIES.meter
    session_cookie_name: str = DEFAULT_COOKIES.session
    timeout: float = DEFAULT_TIMEOUT
    max_requests: int = DEFAULT_MAX_REQUESTS
    max_bytes: int = DEFAULT_MAX_BYTES
