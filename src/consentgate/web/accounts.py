"""The built-in account endpoints, for sites without accounts of their own.

GET  {prefix}/register   registration form: e-mail, password, privacy policy (required,
POST {prefix}/register   unticked), newsletter (optional, unticked)
GET  {prefix}/login      sign-in form
POST {prefix}/login
POST {prefix}/logout     ends this session on the server and clears its cookie
POST {prefix}/logout/everywhere   ends every session of the signed-in reader
POST {prefix}/password   changes the password (current_password, new_password) and
                         ends every other session of the reader
GET  {prefix}/policy     asks a signed-in reader to accept a new privacy-policy version
POST {prefix}/policy

Every POST is CSRF-protected like the consent endpoints (a token bound to the
browser's id cookie, and the Origin check). Sign-in failures are counted per client
network (an IPv4 address or an IPv6 /64, as HMACs) and per account *and* network, each
with a growing delay once the free ones are used: failures from elsewhere never delay
the owner's network. Registrations are limited per network. No session cookie is set
unless the account, its acceptance rows and the session were written: a storage
failure answers 503 and nothing else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from consentgate.accounts import (
    AccountError,
    Accounts,
    Backoff,
    BackoffPolicy,
    RateLimiter,
    SessionStore,
)
from consentgate.config import Config
from consentgate.metrics import REGISTRATIONS, Metrics
from consentgate.storage import StorageError
from consentgate.visitor import client_network
from consentgate.web.account_templates import (
    AccountPage,
    account_texts,
    render_account_message,
    render_login_page,
    render_policy_page,
    render_register_page,
)
from consentgate.web.forms import (
    Form,
    RequestFailure,
    check_csrf,
    first,
    read_form,
    see_other,
)
from consentgate.web.pages import PageKit
from consentgate.web.security import safe_next

__all__ = [
    "LOGIN_WINDOW_SECONDS",
    "REGISTER_WINDOW_SECONDS",
    "AccountEndpoints",
    "AccountHandler",
    "AccountVisitor",
    "Limit",
    "RequestFailure",
]

logger = logging.getLogger("consentgate")


class AccountVisitor(Protocol):
    """The parts of :class:`consentgate.visitor.Visitor` these endpoints read."""

    @property
    def cookies(self) -> Mapping[str, str]: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def client_ip(self) -> str | None: ...
    @property
    def language(self) -> str: ...
    @property
    def scheme(self) -> str: ...


AccountHandler = Callable[[Scope, Receive, Send, AccountVisitor], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limit:
    attempts: int
    window_seconds: int


# Window of accounts.register_per_hour, per client network: enough for a household,
# too few to enumerate e-mails (EMAIL_TAKEN tells whether an address is registered).
# Only registrations that pass validation count.
REGISTER_WINDOW_SECONDS = 3600
LOGIN_WINDOW_SECONDS = 900  # the longest sign-in delay (accounts.login_per_15_minutes)
# A whole network (a NAT, an office) fails more often than one reader; it gets this
# many times the per-account free failures before its delays start.
NETWORK_FAILURE_FACTOR = 5


class AccountEndpoints:
    def __init__(
        self,
        pages: PageKit,
        accounts: Accounts,
        sessions: SessionStore,
        rate_limiter: RateLimiter,
        backoff: Backoff,
        metrics: Metrics,
    ) -> None:
        self.pages = pages
        self.config: Config = pages.config
        self.accounts = accounts
        self.sessions = sessions
        self.rate_limiter = rate_limiter
        self.backoff = backoff
        self.metrics = metrics
        self.prefix = self.config.prefix
        settings = self.config.accounts
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

    def routes(self) -> dict[tuple[str, str], AccountHandler]:
        prefix = self.prefix
        return {
            ("GET", f"{prefix}/register"): self.register_form,
            ("POST", f"{prefix}/register"): self.register,
            ("GET", f"{prefix}/login"): self.login_form,
            ("POST", f"{prefix}/login"): self.login,
            ("POST", f"{prefix}/logout"): self.logout,
            ("POST", f"{prefix}/logout/everywhere"): self.logout_everywhere,
            ("POST", f"{prefix}/password"): self.change_password,
            ("GET", f"{prefix}/policy"): self.policy_form,
            ("POST", f"{prefix}/policy"): self.accept_policy,
        }

    # -- register -------------------------------------------------------------------
    async def register_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        if visitor.user_id is not None:
            await see_other(next_url)(scope, receive, send)
            return
        await self._page(scope, receive, send, visitor, next_url, self._register_renderer())

    async def register(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        next_url = safe_next(first(form, "next"))
        email, password = first(form, "email"), first(form, "password")
        accepted, newsletter = bool(first(form, "accept_policy")), bool(first(form, "newsletter"))
        accounts = self.accounts
        problems = accounts.registration_problems(email, password, accepted)
        if problems:
            errors = _errors_by_field(problems)
            render = self._register_renderer(email=email, errors=errors)
            await self._page(scope, receive, send, visitor, next_url, render, status=400)
            return
        context = accounts.context(visitor.client_ip, request.headers.get("user-agent"))
        network = self._network_key(visitor)
        if not await self._allowed(f"register:net:{network}", self.register_limit):
            await self._too_many(
                scope, receive, send, visitor, next_url, self.register_limit.window_seconds
            )
            return
        try:
            user = await accounts.register(email, password, accepted, newsletter, context)
        except AccountError as error:
            render = self._register_renderer(email=email, errors={error.field: error.message})
            await self._page(scope, receive, send, visitor, next_url, render, status=400)
            return
        except StorageError as exc:
            logger.error("consentgate: registration not stored, no account: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_register")
            return
        self.metrics.add(REGISTRATIONS)
        await self._signed_in(scope, receive, send, visitor, user.id, next_url)

    def _register_renderer(
        self, *, email: str = "", errors: dict[str, str] | None = None
    ) -> Callable[[AccountPage], str]:
        min_length = self.accounts.min_password_length

        def render(page: AccountPage) -> str:
            return render_register_page(
                page, email=email, errors=errors, min_password_length=min_length
            )

        return render

    # -- login / logout ---------------------------------------------------------------
    async def login_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        await self._page(scope, receive, send, visitor, next_url, render_login_page)

    async def login(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        next_url = safe_next(first(form, "next"))
        email, password = first(form, "email"), first(form, "password")
        accounts = self.accounts
        # Checked before the password is: a waiting key learns nothing, right or wrong.
        keys = self._login_keys(visitor, email)
        wait = await self._login_wait(keys)
        if wait > 0:
            await self._too_many(scope, receive, send, visitor, next_url, wait)
            return
        try:
            user = await accounts.authenticate(email, password)
        except StorageError as exc:
            logger.error("consentgate: sign-in impossible, storage failed: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_login")
            return
        if user is None:
            await self._login_failed(keys)
            error = self._texts(visitor)["login_error"]

            def render(page: AccountPage) -> str:
                return render_login_page(page, email=email, error=error)

            await self._page(scope, receive, send, visitor, next_url, render, status=400)
            return
        # The owner proved who they are: their network's delay for this account ends
        # (the network's own count stays, or one valid account would reset it).
        await self.backoff.success(keys[1])
        await self._signed_in(scope, receive, send, visitor, user.id, next_url)

    def _network_key(self, visitor: AccountVisitor) -> str:
        network = client_network(visitor.client_ip, self.ipv6_prefix)
        return self.accounts.context(network, None).ip_hmac or "unknown"

    def _login_keys(self, visitor: AccountVisitor, email: str) -> tuple[str, str]:
        network = self._network_key(visitor)
        account = self.accounts.email_key(email)
        return f"login:net:{network}", f"login:account:{account}:net:{network}"

    async def _login_wait(self, keys: tuple[str, str]) -> float:
        backoff = self.backoff
        return max(
            await backoff.wait_seconds(keys[0], self.network_backoff),
            await backoff.wait_seconds(keys[1], self.account_backoff),
        )

    async def _login_failed(self, keys: tuple[str, str]) -> None:
        backoff = self.backoff
        await backoff.failure(keys[0], self.network_backoff)
        await backoff.failure(keys[1], self.account_backoff)

    async def logout(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        try:
            await self.sessions.end(self._session_value(visitor))
        except StorageError as exc:
            # The cookie still goes; the row expires with its lifetime.
            logger.error("consentgate: could not end a session on the server: %s", exc)
        await self._signed_out(scope, receive, send, visitor, safe_next(first(form, "next")))

    async def logout_everywhere(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        """Every session of this reader ends: other browsers, copied cookies, this one."""
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        next_url = safe_next(first(form, "next"))
        if visitor.user_id is not None:
            try:
                await self.sessions.end_all(visitor.user_id)
            except StorageError as exc:
                logger.error("consentgate: could not end the sessions: %s", exc)
                await self._unavailable(
                    scope, receive, send, visitor, next_url, "unavailable_login"
                )
                return
        await self._signed_out(scope, receive, send, visitor, next_url)

    async def change_password(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        """The current password, then the new one; every other session ends."""
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        next_url = safe_next(first(form, "next"))
        user_id = visitor.user_id
        if user_id is None:
            await see_other(f"{self.prefix}/login?next={quote(next_url, safe='/')}")(
                scope, receive, send
            )
            return
        keys = self._login_keys(visitor, f"user:{user_id}")
        wait = await self._login_wait(keys)
        if wait > 0:
            await self._too_many(scope, receive, send, visitor, next_url, wait)
            return
        texts = self._texts(visitor)
        try:
            problem = await self.accounts.change_password(
                user_id, first(form, "current_password"), first(form, "new_password")
            )
            if problem is None:
                await self.sessions.end_all(user_id, keep=self._session_value(visitor))
        except StorageError as exc:
            logger.error("consentgate: password not changed, storage failed: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_login")
            return
        if problem is not None:
            if problem.wrong_current:
                await self._login_failed(keys)
            page = self._account_page(visitor, "", next_url)
            body = render_account_message(page, texts["error_title"], problem.message, next_url)
            response = HTMLResponse(body, status_code=400, headers=self.pages.page_headers)
            await response(scope, receive, send)
            return
        await see_other(next_url)(scope, receive, send)

    async def _signed_out(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor, next_url: str
    ) -> None:
        response = see_other(next_url)
        response.headers.append(
            "set-cookie", self.pages.cookies.session.expired(scheme=visitor.scheme)
        )
        await response(scope, receive, send)

    def _session_value(self, visitor: AccountVisitor) -> str | None:
        return visitor.cookies.get(self.config.cookie_names.session)

    # -- policy re-acceptance -----------------------------------------------------------
    async def policy_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        user_id = visitor.user_id
        if user_id is None:
            await self._to_login(next_url)(scope, receive, send)
            return
        try:
            needed = await self.accounts.needs_policy_acceptance(user_id)
        except StorageError as exc:
            logger.error("consentgate: cannot read policy acceptances: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_policy")
            return
        if not needed:
            await see_other(next_url)(scope, receive, send)
            return
        await self._page(scope, receive, send, visitor, next_url, render_policy_page)

    async def accept_policy(
        self, scope: Scope, receive: Receive, send: Send, visitor: AccountVisitor
    ) -> None:
        request = Request(scope, receive)
        form = await self._post_form(request, visitor)
        if isinstance(form, RequestFailure):
            await self._failure(scope, receive, send, visitor, form)
            return
        next_url = safe_next(first(form, "next"))
        user_id = visitor.user_id
        if user_id is None:
            await self._to_login(next_url)(scope, receive, send)
            return
        if not first(form, "accept_policy"):
            error = self._texts(visitor)["policy_error"]

            def render(page: AccountPage) -> str:
                return render_policy_page(page, error=error)

            await self._page(scope, receive, send, visitor, next_url, render, status=400)
            return
        accounts = self.accounts
        context = accounts.context(visitor.client_ip, request.headers.get("user-agent"))
        try:
            # A second submit of the same form records nothing twice.
            if await accounts.needs_policy_acceptance(user_id):
                await accounts.record_acceptance(user_id, "re-acceptance", context)
        except StorageError as exc:
            logger.error("consentgate: policy acceptance not recorded: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_policy")
            return
        await see_other(next_url)(scope, receive, send)

    # -- shared pieces ------------------------------------------------------------------
    async def _post_form(self, request: Request, visitor: AccountVisitor) -> Form | RequestFailure:
        """The urlencoded form if it is readable and passes the CSRF checks."""
        try:
            form = await read_form(request)
            cookie_token = visitor.cookies.get(self.config.cookie_names.csrf)
            check_csrf(request, self.pages.csrf, cookie_token, first(form, "csrf_token"))
        except RequestFailure as failure:
            return failure
        return form

    async def _allowed(self, key: str, limit: Limit) -> bool:
        return await self.rate_limiter.hit(key, limit.attempts, limit.window_seconds)

    def _texts(self, visitor: AccountVisitor) -> dict[str, str]:
        return account_texts(visitor.language)

    def _account_page(self, visitor: AccountVisitor, csrf_token: str, next_url: str) -> AccountPage:
        config = self.config
        return AccountPage(
            prefix=config.prefix,
            lang=visitor.language,
            csrf_token=csrf_token,
            next_url=next_url,
            policy_url=config.policy.url,
            policy_version=config.policy.version,
            site_name=config.site_name,
            static_version=self.pages.static_version,
            texts=self._texts(visitor),
        )

    async def _page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        next_url: str,
        render: Callable[[AccountPage], str],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Render a page with a CSRF token, setting the CSRF cookie if it is new."""
        token, cookie = self.pages.csrf_token_for(visitor)
        page = self._account_page(visitor, token, next_url)
        response = HTMLResponse(
            render(page), status_code=status, headers={**self.pages.page_headers, **(headers or {})}
        )
        if cookie:
            response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)

    async def _signed_in(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        user_id: str,
        next_url: str,
    ) -> None:
        sessions = self.sessions
        try:
            value = await sessions.start(user_id)
        except StorageError as exc:
            logger.error("consentgate: session not stored, not signed in: %s", exc)
            await self._unavailable(scope, receive, send, visitor, next_url, "unavailable_login")
            return
        response = see_other(next_url)
        response.headers.append(
            "set-cookie", self._session_cookie(value, visitor, max_age=sessions.lifetime_seconds)
        )
        await response(scope, receive, send)

    def _session_cookie(self, value: str, visitor: AccountVisitor, *, max_age: int) -> str:
        return self.pages.cookies.session.header(value, max_age=max_age, scheme=visitor.scheme)

    def _to_login(self, next_url: str) -> Response:
        back_here = f"{self.prefix}/policy?next={quote(next_url, safe='/')}"
        return see_other(f"{self.prefix}/login?next={quote(back_here, safe='/')}")

    async def _message(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        next_url: str,
        keys: tuple[str, str],
        *,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        texts = self._texts(visitor)
        page = self._account_page(visitor, "", next_url)
        body = render_account_message(page, texts[keys[0]], texts[keys[1]], next_url)
        response = HTMLResponse(
            body, status_code=status, headers={**self.pages.page_headers, **(headers or {})}
        )
        await response(scope, receive, send)

    async def _too_many(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        next_url: str,
        wait_seconds: float,
    ) -> None:
        retry = {"retry-after": str(max(1, math.ceil(wait_seconds)))}
        keys = ("too_many_title", "too_many_message")
        await self._message(
            scope, receive, send, visitor, next_url, keys, status=429, headers=retry
        )

    async def _unavailable(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        next_url: str,
        message_key: str,
    ) -> None:
        keys = ("unavailable_title", message_key)
        await self._message(scope, receive, send, visitor, next_url, keys, status=503)

    async def _failure(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: AccountVisitor,
        failure: RequestFailure,
    ) -> None:
        """A CSRF or unreadable-form failure, as a small page with its status."""
        title = self._texts(visitor)["error_title"]
        page = self._account_page(visitor, "", "/")
        body = render_account_message(page, title, str(failure), None)
        response = HTMLResponse(
            body, status_code=failure.failure.status, headers=self.pages.page_headers
        )
        await response(scope, receive, send)


def _errors_by_field(problems: list[AccountError]) -> dict[str, str]:
    """The first problem of each field: one message next to each control."""
    errors: dict[str, str] = {}
    for problem in problems:
        errors.setdefault(problem.field, problem.message)
    return errors
