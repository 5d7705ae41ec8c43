"""The built-in account endpoints, for sites without accounts of their own.

GET  {prefix}/register   registration form: e-mail, password, privacy policy (required,
POST {prefix}/register   unticked), the newsletter lists (each optional, unticked)
GET  {prefix}/login      sign-in form
POST {prefix}/login
POST {prefix}/logout     ends this session on the server and clears its cookie
POST {prefix}/logout/everywhere   ends every session of the signed-in reader
POST {prefix}/password   changes the password (current_password, new_password) and
                         ends every other session of the reader
GET  {prefix}/policy     asks a signed-in reader to accept a new privacy-policy version
POST {prefix}/policy

Registering answers "look in your inbox" whether the address was new or taken (the new
address gets its verification link, the owner of a taken one a "someone used your
address" mail), so the form tells nobody which addresses have accounts. The flows
through a mail (verify, sign-in link, password reset): web/account_links.py; the
account page (/account: sessions, password, address, data, deletion):
web/account_page.py. Those parts and this one share what they need through one
``AccountKit`` (web/account_kit.py: the services, the POST wrapper, starting a session),
built here; none of them holds this object.

Every POST is CSRF-protected like the consent endpoints (a token bound to the
browser's id cookie, and the Origin check). Sign-in and registration limits:
web/account_limits.py. No session cookie is set unless the account, its acceptance
rows and the session were written: a storage failure answers 503 and nothing else.
Every failure goes through the one failure path (``PageKit.fail``), drawn as a page of
the account pages' style; the operator's ``failure_response`` hook applies here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from consentgate.accounts import AccountError, Accounts, Backoff, RateLimiter, SessionStore
from consentgate.accounts.newsletters import Newsletters
from consentgate.metrics import REGISTRATIONS, Metrics
from consentgate.storage import Storage, StorageError
from consentgate.web.account_flow_templates import render_notice_page
from consentgate.web.account_kit import AccountHandler, AccountKit, Posted
from consentgate.web.account_limits import (
    LOGIN_WINDOW_SECONDS,
    REGISTER_WINDOW_SECONDS,
    Limit,
    SignInLimits,
)
from consentgate.web.account_links import MailFlows
from consentgate.web.account_page import AccountPageEndpoints
from consentgate.web.account_responses import AccountResponses
from consentgate.web.account_templates import (
    AccountPage,
    render_login_page,
    render_policy_page,
    render_register_page,
)
from consentgate.web.errors import Failure
from consentgate.web.forms import RequestFailure, first, see_other
from consentgate.web.newsletter_templates import render_newsletter_choices
from consentgate.web.pages import PageKit
from consentgate.web.security import safe_next

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

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
    """The parts of :class:`consentgate.visitor.Visitor` these endpoints read. (They are
    given the Visitor itself, like every route: the operator's failure hook takes it.)"""

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


class AccountEndpoints:
    def __init__(
        self,
        pages: PageKit,
        accounts: Accounts,
        sessions: SessionStore,
        rate_limiter: RateLimiter,
        backoff: Backoff,
        metrics: Metrics,
        *,
        storage: Storage,
        wake: Callable[[], None] | None = None,
        newsletters: Newsletters | None = None,
    ) -> None:
        """``wake`` tells the mail sender there is mail to send (else it finds it on
        its next poll); ``newsletters``: the lists offered at registration and on the
        account page."""
        self.metrics = metrics
        self.limits = SignInLimits(pages.config.accounts, accounts, rate_limiter, backoff)
        self.kit = AccountKit(
            pages=pages,
            accounts=accounts,
            sessions=sessions,
            storage=storage,
            limits=self.limits,
            answer=AccountResponses(pages),
            newsletters=newsletters,
            wake=wake,
        )
        self.flows = MailFlows(self.kit)
        self.account_page = AccountPageEndpoints(self.kit, self.flows)
        self.prefix = pages.config.prefix

    @property
    def backoff(self) -> Backoff:
        return self.limits.backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:  # (tests swap in one on a fake clock)
        self.limits.backoff = backoff

    def routes(self) -> dict[tuple[str, str], AccountHandler]:
        prefix, post = self.prefix, self.kit.post
        return {
            **self.flows.routes(),
            **self.account_page.routes(),
            ("GET", f"{prefix}/register"): self.register_form,
            ("POST", f"{prefix}/register"): post(self.register),
            ("GET", f"{prefix}/login"): self.login_form,
            ("POST", f"{prefix}/login"): post(self.login),
            ("POST", f"{prefix}/logout"): post(self.logout),
            ("POST", f"{prefix}/logout/everywhere"): post(self.logout_everywhere),
            ("POST", f"{prefix}/password"): post(self.change_password),
            ("GET", f"{prefix}/policy"): self.policy_form,
            ("POST", f"{prefix}/policy"): post(self.accept_policy),
        }

    # -- register -------------------------------------------------------------------
    async def register_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        if visitor.user_id is not None:
            await see_other(next_url)(scope, receive, send)
            return
        await self.kit.answer.page(
            scope, receive, send, visitor, next_url, self._register_renderer()
        )

    async def register(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        form, next_url = posted.form, posted.next_url
        email, password = first(form, "email"), first(form, "password")
        accepted = bool(first(form, "accept_policy"))
        accounts = self.kit.accounts
        problems = accounts.registration_problems(email, password, accepted)
        if problems:
            errors = _errors_by_field(problems)
            render = self._register_renderer(email=email, errors=errors)
            await self.kit.answer.page(scope, receive, send, visitor, next_url, render, status=400)
            return
        context = accounts.context(visitor.client_ip, posted.request.headers.get("user-agent"))
        if not await self.limits.register_allowed(visitor.client_ip):
            wait = self.limits.register_limit.window_seconds
            await self.kit.answer.too_many(scope, receive, send, visitor, next_url, wait)
            return
        mail = self.flows.registration_mail(scope, visitor, next_url)
        try:
            user = await accounts.register(email, password, accepted, context, mail=mail)
        except AccountError as error:
            render = self._register_renderer(email=email, errors={error.field: error.message})
            await self.kit.answer.page(scope, receive, send, visitor, next_url, render, status=400)
            return
        except StorageError as exc:
            logger.error("consentgate: registration not stored, no account: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_register"
            )
            return
        if user is not None:
            self.metrics.add(REGISTRATIONS)
            if self.kit.newsletters is not None:  # the lists ticked: double opt-in mails go out
                await self.kit.newsletters.subscribe_at_registration(
                    user, form.get("newsletters", []), context, visitor.language
                )
        self.kit.wake_sender()

        # The same page whether the address was new or taken: only the mail differs.
        await self.kit.answer.page(scope, receive, send, visitor, next_url, _registered)

    def _register_renderer(
        self, *, email: str = "", errors: dict[str, str] | None = None
    ) -> Callable[[AccountPage], str]:
        min_length = self.kit.accounts.min_password_length
        lists = self.kit.config.newsletters

        def render(page: AccountPage) -> str:
            return render_register_page(
                page,
                email=email,
                errors=errors,
                min_password_length=min_length,
                newsletter_choices=render_newsletter_choices(lists, page.lang),
            )

        return render

    # -- login / logout ---------------------------------------------------------------
    async def login_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        await self.kit.answer.page(scope, receive, send, visitor, next_url, render_login_page)

    async def login(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        form, next_url = posted.form, posted.next_url
        email, password = first(form, "email"), first(form, "password")
        limits = self.limits
        # Checked before the password is: a waiting key learns nothing, right or wrong.
        keys = limits.login_keys(visitor.client_ip, email)
        wait = await limits.login_wait(keys)
        if wait > 0:
            await self.kit.answer.too_many(scope, receive, send, visitor, next_url, wait)
            return
        try:
            user = await self.kit.accounts.authenticate(email, password)
        except StorageError as exc:
            logger.error("consentgate: sign-in impossible, storage failed: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_login"
            )
            return
        if user is None:
            await limits.login_failed(keys)
            error = self.kit.answer.texts(visitor)["login_error"]

            def render(page: AccountPage) -> str:
                return render_login_page(page, email=email, error=error)

            await self.kit.answer.page(scope, receive, send, visitor, next_url, render, status=400)
            return
        await limits.login_succeeded(keys)
        await self.kit.signed_in(scope, receive, send, visitor, user.id, next_url)

    async def logout(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        try:
            await self.kit.sessions.end(self._session_value(visitor))
        except StorageError as exc:
            # The cookie still goes; the row expires with its lifetime.
            logger.error("consentgate: could not end a session on the server: %s", exc)
        await self._signed_out(scope, receive, send, visitor, posted.next_url)

    async def logout_everywhere(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        """Every session of this reader ends: other browsers, copied cookies, this one."""
        next_url = posted.next_url
        if visitor.user_id is not None:
            try:
                await self.kit.sessions.end_all(visitor.user_id)
            except StorageError as exc:
                logger.error("consentgate: could not end the sessions: %s", exc)
                await self.kit.answer.unavailable(
                    scope, receive, send, visitor, next_url, "unavailable_login"
                )
                return
        await self._signed_out(scope, receive, send, visitor, next_url)

    async def change_password(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        """The current password, then the new one; every other session ends."""
        form, next_url = posted.form, posted.next_url
        user_id = visitor.user_id
        if user_id is None:
            await see_other(f"{self.prefix}/login?next={quote(next_url, safe='/')}")(
                scope, receive, send
            )
            return
        limits = self.limits
        keys = limits.login_keys(visitor.client_ip, f"user:{user_id}")
        wait = await limits.login_wait(keys)
        if wait > 0:
            await self.kit.answer.too_many(scope, receive, send, visitor, next_url, wait)
            return
        try:
            problem = await self.kit.accounts.change_password(
                user_id, first(form, "current_password"), first(form, "new_password")
            )
            if problem is None:
                await self.kit.sessions.end_all(user_id, keep=self._session_value(visitor))
        except StorageError as exc:
            logger.error("consentgate: password not changed, storage failed: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_login"
            )
            return
        if problem is not None:
            if problem.wrong_current:
                await limits.login_failed(keys)
            refused = RequestFailure(Failure.PASSWORD_NOT_CHANGED, message=problem.message)
            await self.kit.answer.fail(scope, receive, send, visitor, refused, next_url)
            return
        await see_other(next_url)(scope, receive, send)

    async def _signed_out(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, next_url: str
    ) -> None:
        response = see_other(next_url)
        response.headers.append(
            "set-cookie", self.kit.pages.cookies.session.expired(scheme=visitor.scheme)
        )
        await response(scope, receive, send)

    def _session_value(self, visitor: Visitor) -> str | None:
        return visitor.cookies.get(self.kit.config.cookie_names.session)

    # -- policy re-acceptance -----------------------------------------------------------
    async def policy_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        user_id = visitor.user_id
        if user_id is None:
            await self._to_login(next_url)(scope, receive, send)
            return
        try:
            needed = await self.kit.accounts.needs_policy_acceptance(user_id)
        except StorageError as exc:
            logger.error("consentgate: cannot read policy acceptances: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_policy"
            )
            return
        if not needed:
            await see_other(next_url)(scope, receive, send)
            return
        await self.kit.answer.page(scope, receive, send, visitor, next_url, render_policy_page)

    async def accept_policy(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        next_url = posted.next_url
        user_id = visitor.user_id
        if user_id is None:
            await self._to_login(next_url)(scope, receive, send)
            return
        if not first(posted.form, "accept_policy"):
            error = self.kit.answer.texts(visitor)["policy_error"]

            def render(page: AccountPage) -> str:
                return render_policy_page(page, error=error)

            await self.kit.answer.page(scope, receive, send, visitor, next_url, render, status=400)
            return
        accounts = self.kit.accounts
        context = accounts.context(visitor.client_ip, posted.request.headers.get("user-agent"))
        try:
            # A second submit of the same form records nothing twice.
            if await accounts.needs_policy_acceptance(user_id):
                await accounts.record_acceptance(user_id, "re-acceptance", context)
        except StorageError as exc:
            logger.error("consentgate: policy acceptance not recorded: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_policy"
            )
            return
        await see_other(next_url)(scope, receive, send)

    def _to_login(self, next_url: str) -> Response:
        return self.kit.to_login(f"{self.prefix}/policy", next_url)


def _registered(page: AccountPage) -> str:
    return render_notice_page(page, "sent_title", "register_sent")


def _errors_by_field(problems: list[AccountError]) -> dict[str, str]:
    """The first problem of each field: one message next to each control."""
    errors: dict[str, str] = {}
    for problem in problems:
        errors.setdefault(problem.field, problem.message)
    return errors
