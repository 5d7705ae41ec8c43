"""How often the account pages let a client network try: sign-in delays, registrations.

Sign-in failures are counted per client network (an IPv4 address or an IPv6 /64, as
HMACs) and per account *and* network, each with a growing delay once the free ones are
used: failures from elsewhere never delay the owner's network. Registrations are
limited per network.
"""

from __future__ import annotations

from dataclasses import dataclass

from consentgate.accounts import Accounts, Backoff, BackoffPolicy, RateLimiter
from consentgate.accounts.settings import AccountsSettings
from consentgate.visitor import client_network

__all__ = [
    "LOGIN_WINDOW_SECONDS",
    "MAIL_WINDOW_SECONDS",
    "NETWORK_FAILURE_FACTOR",
    "REGISTER_WINDOW_SECONDS",
    "Limit",
    "SignInLimits",
]


@dataclass(frozen=True, slots=True)
class Limit:
    attempts: int
    window_seconds: int


# Window of accounts.register_per_hour, per client network: enough for a household,
# too few to flood strangers' inboxes with "someone used your address" mail.
# Only registrations that pass validation count.
REGISTER_WINDOW_SECONDS = 3600
# Window of accounts.mail_requests_per_hour (sign-in links, resets, verification again).
MAIL_WINDOW_SECONDS = 3600
LOGIN_WINDOW_SECONDS = 900  # the longest sign-in delay (accounts.login_per_15_minutes)
# A whole network (a NAT, an office) fails more often than one reader; it gets this
# many times the per-account free failures before its delays start.
NETWORK_FAILURE_FACTOR = 5

# (the network's key, the account-on-this-network's key)
LoginKeys = tuple[str, str]


class SignInLimits:
    def __init__(
        self,
        settings: AccountsSettings,
        accounts: Accounts,
        rate_limiter: RateLimiter,
        backoff: Backoff,
    ) -> None:
        self.accounts = accounts
        self.rate_limiter = rate_limiter
        self.backoff = backoff
        self.register_limit = Limit(settings.register_per_hour, REGISTER_WINDOW_SECONDS)
        # login_per_15_minutes failures are free, then each one doubles the wait (1 s,
        # 2 s, 4 s …, at most 15 minutes): typos cost nothing, guessing costs hours.
        self.account_backoff = BackoffPolicy(
            free=settings.login_per_15_minutes, max_seconds=LOGIN_WINDOW_SECONDS
        )
        self.network_backoff = BackoffPolicy(
            free=settings.login_per_15_minutes * NETWORK_FAILURE_FACTOR,
            max_seconds=LOGIN_WINDOW_SECONDS,
        )
        self.ipv6_prefix = settings.ipv6_prefix
        # Per address: a reader asks for a link or two; more is someone filling their
        # inbox. Per network (NETWORK_FAILURE_FACTOR times as many): one client cannot
        # walk through many addresses either.
        self.mail_limit = Limit(settings.mail_requests_per_hour, MAIL_WINDOW_SECONDS)

    def network_key(self, client_ip: str | None) -> str:
        network = client_network(client_ip, self.ipv6_prefix)
        return self.accounts.context(network, None).ip_hmac or "unknown"

    async def register_allowed(self, client_ip: str | None) -> bool:
        """Counts this registration against the network's hourly limit."""
        limit = self.register_limit
        key = f"register:net:{self.network_key(client_ip)}"
        return await self.rate_limiter.hit(key, limit.attempts, limit.window_seconds)

    async def mail_allowed(self, client_ip: str | None, email: str) -> bool:
        """Counts one mail request against the address's and the network's limits; the
        same whether the address has an account or not (the answer must not tell)."""
        limit = self.mail_limit
        network = f"mail:net:{self.network_key(client_ip)}"
        address = f"mail:address:{self.accounts.email_key(email)}"
        network_ok = await self.rate_limiter.hit(
            network, limit.attempts * NETWORK_FAILURE_FACTOR, limit.window_seconds
        )
        address_ok = await self.rate_limiter.hit(address, limit.attempts, limit.window_seconds)
        return network_ok and address_ok

    def login_keys(self, client_ip: str | None, email: str) -> LoginKeys:
        network = self.network_key(client_ip)
        account = self.accounts.email_key(email)
        return f"login:net:{network}", f"login:account:{account}:net:{network}"

    async def login_wait(self, keys: LoginKeys) -> float:
        backoff = self.backoff
        return max(
            await backoff.wait_seconds(keys[0], self.network_backoff),
            await backoff.wait_seconds(keys[1], self.account_backoff),
        )

    async def login_failed(self, keys: LoginKeys) -> None:
        backoff = self.backoff
        await backoff.failure(keys[0], self.network_backoff)
        await backoff.failure(keys[1], self.account_backoff)

    async def login_succeeded(self, keys: LoginKeys) -> None:
        # The owner proved who they are: their network's delay for this account ends
        # (the network's own count stays, or one valid account would reset it).
        await self.backoff.success(keys[1])
