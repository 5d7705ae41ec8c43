"""What the account endpoints share, built once by ``AccountEndpoints``: :class:`AccountKit`.

The services (accounts, sessions, storage, limits, newsletters), the way the account
pages answer, and the helpers every part uses: the POST wrapper (the form, its CSRF
check), starting a session, the way to the sign-in form. The registration and sign-in
endpoints (web/accounts.py), the mail flows (web/account_links.py) and the account page
(web/account_page.py) each receive this one object, not each other, so none of them
holds its parent and the imports run one way: they all build on this module.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from consentgate.accounts import Accounts, SessionStore
from consentgate.accounts.newsletters import Newsletters
from consentgate.config import Config
from consentgate.storage import Storage, StorageError
from consentgate.web.account_limits import SignInLimits
from consentgate.web.account_responses import AccountResponses
from consentgate.web.forms import Form, RequestFailure, check_csrf, first, read_form, see_other
from consentgate.web.pages import PageKit
from consentgate.web.security import safe_next

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = ["AccountHandler", "AccountKit", "PostHandler", "Posted"]

logger = logging.getLogger("consentgate")

# The signature of every route of ours (web/endpoints.py's Handler).
AccountHandler = Callable[[Scope, Receive, Send, "Visitor"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Posted:
    """A POST that passed the checks every account form shares."""

    request: Request
    form: Form
    #: The form's ``next``, made safe: where the reader goes afterwards.
    next_url: str


PostHandler = Callable[[Scope, Receive, Send, "Visitor", Posted], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AccountKit:
    pages: PageKit
    accounts: Accounts
    sessions: SessionStore
    storage: Storage
    limits: SignInLimits
    answer: AccountResponses
    #: The lists offered at registration and on the account page.
    newsletters: Newsletters | None
    #: Tells the mail sender there is mail to send (else it finds it on its next poll).
    wake: Callable[[], None] | None

    @property
    def config(self) -> Config:
        return self.pages.config

    @property
    def prefix(self) -> str:
        return self.pages.config.prefix

    def wake_sender(self) -> None:
        if self.wake is not None:
            self.wake()

    def post(self, handler: PostHandler) -> AccountHandler:
        """Every account POST: the urlencoded form, read and CSRF-checked like the
        consent endpoints' (a token bound to the browser, the Origin), or the failure."""

        async def endpoint(scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
            request = Request(scope, receive)
            try:
                form = await read_form(request)
                cookie_token = visitor.cookies.get(self.config.cookie_names.csrf)
                check_csrf(request, self.pages.csrf, cookie_token, first(form, "csrf_token"))
            except RequestFailure as failure:
                # No link back: the form, and so its next, may not even have been read.
                await self.answer.fail(scope, receive, send, visitor, failure, None)
                return
            posted = Posted(request, form, safe_next(first(form, "next")))
            await handler(scope, receive, send, visitor, posted)

        return endpoint

    async def signed_in(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        user_id: str,
        next_url: str,
    ) -> None:
        """A new session for ``user_id``, its cookie, and on to ``next_url``; no cookie
        unless the session was stored (else a 503)."""
        sessions = self.sessions
        try:
            value = await sessions.start(user_id)
        except StorageError as exc:
            logger.error("consentgate: session not stored, not signed in: %s", exc)
            await self.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_login"
            )
            return
        response = see_other(next_url)
        cookie = self.pages.cookies.session.header(
            value, max_age=sessions.lifetime_seconds, scheme=visitor.scheme
        )
        response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)

    def to_login(self, path: str, next_url: str) -> Response:
        """To the sign-in form, which comes back to ``path`` (and then ``next_url``)."""
        back_here = f"{path}?next={quote(next_url, safe='/')}"
        return see_other(f"{self.prefix}/login?next={quote(back_here, safe='/')}")
