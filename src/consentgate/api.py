"""What the site's own code may ask of consentgate, as ``request.state.consentgate``.

A small object built once by the middleware, holding only what its methods need: the
app never gets the middleware itself (its configuration, keys and storage stay inside).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope

from consentgate.accounts.service import AcceptanceMethod, Accounts
from consentgate.storage import AcceptanceRecord
from consentgate.visitor import client_address

__all__ = ["SiteAPI"]


class SiteAPI:
    """For sites with their own accounts: record and check privacy-policy acceptances."""

    __slots__ = ("_accounts", "_trusted_proxies", "_trusted_proxy_header")

    def __init__(
        self, accounts: Accounts, trusted_proxies: tuple[str, ...], trusted_proxy_header: str
    ) -> None:
        self._accounts = accounts
        self._trusted_proxies = trusted_proxies
        self._trusted_proxy_header = trusted_proxy_header

    async def record_policy_acceptance(
        self, scope: Scope, user_id: str, *, method: AcceptanceMethod = "external"
    ) -> AcceptanceRecord:
        """Record that ``user_id`` accepted the current privacy policy (version, text hash).

        Call it from your own sign-up or policy page, e.g.
        ``await request.state.consentgate.record_policy_acceptance(request.scope, user.id)``.
        Raises StorageError if it cannot be written; then the acceptance did not happen.
        """
        ip = client_address(scope, self._trusted_proxies, self._trusted_proxy_header)
        context = self._accounts.context(ip, Headers(scope=scope).get("user-agent"))
        return await self._accounts.record_acceptance(user_id, method, context)

    async def needs_policy_acceptance(self, user_id: str) -> bool:
        """True when ``user_id`` has not accepted the current policy version."""
        return await self._accounts.needs_policy_acceptance(user_id)
