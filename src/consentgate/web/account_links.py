"""The account flows that go through a mail: verify the address, sign in by a link,
reset a forgotten password, confirm a change of address.

GET  {prefix}/verify?token=…              the verification link's page (a button)
POST {prefix}/verify                      verifies, signs in on this browser
GET  {prefix}/verify/resend               (signed in) send the verification link again
POST {prefix}/verify/resend
GET  {prefix}/login/link                  ask for a sign-in link
POST {prefix}/login/link
GET  {prefix}/login/link/confirm?token=…  the sign-in link's page
POST {prefix}/login/link/confirm          signs in
GET  {prefix}/password/forgot             ask for a reset link
POST {prefix}/password/forgot
GET  {prefix}/password/reset?token=…      the reset link's page: the new password
POST {prefix}/password/reset              sets it, ends every session, signs in here

A mail's link only opens a page; its button POSTs (CSRF-protected like every form),
because mail scanners fetch links and a GET must never use one up. Asking for a link
answers the same whether the address has an account or not, and is limited per address
and per network (web/account_limits.py). A bad link — expired, used, altered, for
another purpose, or issued before the password or address changed — gets one clear
400 page (``Failure.LINK_INVALID``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from consentgate.accounts.links import LinkClaim, LinkPurpose, Links
from consentgate.accounts.mails import AccountMails
from consentgate.accounts.passwords import password_problem
from consentgate.accounts.service import normalize_email
from consentgate.storage import StorageError, User
from consentgate.storage.records import OutgoingMail
from consentgate.web.account_flow_templates import (
    render_email_request_page,
    render_link_page,
    render_notice_page,
)
from consentgate.web.account_kit import AccountHandler, AccountKit, Posted, PostHandler
from consentgate.web.account_templates import AccountPage
from consentgate.web.errors import Failure
from consentgate.web.forms import RequestFailure, first, see_other
from consentgate.web.security import safe_next

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = ["MailFlows"]

logger = logging.getLogger("consentgate")
_MAX_TOKEN = 2048  # ours are a few hundred characters; longer is not worth verifying


@dataclass(frozen=True, slots=True)
class _LinkByMail:
    """A flow that starts with "send me a link": where the address is asked for, where
    the link leads, the texts of both pages, and the mail."""

    purpose: LinkPurpose
    ask_path: str
    link_path: str
    ask_keys: tuple[str, str, str]
    page_keys: tuple[str, str, str]
    mail: Callable[[AccountMails, str, str, str], OutgoingMail]  # (mails, to, lang, url)
    new_password: bool = False


_SIGN_IN = _LinkByMail(
    LinkPurpose.SIGN_IN,
    "/login/link",
    "/login/link/confirm",
    ("magic_title", "magic_intro", "magic_button"),
    ("magic_confirm_title", "magic_confirm_intro", "login_button"),
    AccountMails.magic_link,
)
_RESET = _LinkByMail(
    LinkPurpose.RESET_PASSWORD,
    "/password/forgot",
    "/password/reset",
    ("forgot_title", "forgot_intro", "forgot_button"),
    ("reset_title", "reset_intro", "reset_button"),
    AccountMails.password_reset,
    new_password=True,
)


class MailFlows:
    """The account flows that go through a mail, on the account endpoints' kit."""

    def __init__(self, kit: AccountKit, links: Links | None = None) -> None:
        self.kit = kit
        settings = kit.config.accounts
        self.settings = settings
        # The site's origin (checked at start-up). Without it, the request's: only safe
        # behind a proxy that answers for the site's own host names alone.
        self.public_url = kit.config.public_url.rstrip("/")
        self.links = links or Links(
            kit.config.secret_keys,
            kit.storage,
            lifetime=timedelta(minutes=settings.link_lifetime_minutes),
        )
        self.mails = AccountMails(kit.config.site_name, settings.link_lifetime_minutes)

    def routes(self) -> dict[tuple[str, str], AccountHandler]:
        prefix, post = self.kit.prefix, self.kit.post
        return {
            ("GET", f"{prefix}/verify"): self.verify_page,
            ("POST", f"{prefix}/verify"): post(self.verify),
            ("GET", f"{prefix}/verify/resend"): self.resend_page,
            ("POST", f"{prefix}/verify/resend"): post(self.resend),
            **self._link_by_mail_routes(_SIGN_IN, self.magic_redeem),
            **self._link_by_mail_routes(_RESET, self.reset),
        }

    def _link_by_mail_routes(
        self, flow: _LinkByMail, redeem: PostHandler
    ) -> dict[tuple[str, str], AccountHandler]:
        """A "send me a link" flow: the form asking for the address, the mail, the link's
        page, and what its button does (``redeem``, the one part each flow has its own)."""
        prefix, post = self.kit.prefix, self.kit.post

        async def ask_form(scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
            await self._email_form(scope, receive, send, visitor, flow.ask_path, flow.ask_keys)

        async def ask(
            scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
        ) -> None:
            def mail(user: User, lang: str) -> OutgoingMail:
                token = self.issue(flow.purpose, user, posted.next_url)
                url = self.url(scope, flow.link_path, token)
                return flow.mail(self.mails, user.email, lang, url)

            keys, path = flow.ask_keys, flow.ask_path
            await self._email_request(scope, receive, send, visitor, posted, mail, keys, path)

        async def link_page(scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
            await self.link_page(
                scope,
                receive,
                send,
                visitor,
                flow.purpose,
                flow.link_path,
                flow.page_keys,
                new_password=flow.new_password,
            )

        return {
            ("GET", f"{prefix}{flow.ask_path}"): ask_form,
            ("POST", f"{prefix}{flow.ask_path}"): post(ask),
            ("GET", f"{prefix}{flow.link_path}"): link_page,
            ("POST", f"{prefix}{flow.link_path}"): post(redeem),
        }

    # -- links and mail -----------------------------------------------------------------
    def url(self, scope: Scope, path: str, token: str) -> str:
        """An absolute URL for a mail: accounts.public_url, else the request's origin."""
        base = self.public_url or _origin(scope)
        return f"{base}{self.kit.prefix}{path}?token={quote(token, safe='')}"

    def issue(
        self, purpose: LinkPurpose, user: User, data: str = "", lifetime: timedelta | None = None
    ) -> str:
        return self.links.issue(
            purpose, user.id, fingerprint=Links.fingerprint(user), data=data, lifetime=lifetime
        )

    async def _fingerprint_of(self, user_id: str) -> str | None:
        user = await self.kit.accounts.user(user_id)
        return Links.fingerprint(user) if user is not None else None

    def registration_mail(
        self, scope: Scope, visitor: Visitor, next_url: str
    ) -> Callable[[User, bool], list[OutgoingMail]]:
        """What a registration sends: the verification link to a new account's address,
        or "someone used your address" to the owner of a taken one."""
        lang = visitor.language

        def mail(user: User, new: bool) -> list[OutgoingMail]:
            if new:
                token = self.issue(LinkPurpose.VERIFY_EMAIL, user, next_url, self._verify_lifetime)
                return [
                    self.mails.verify_email(user.email, lang, self.url(scope, "/verify", token))
                ]
            login = self.public_url or _origin(scope)
            return [self.mails.address_taken(user.email, lang, f"{login}{self.kit.prefix}/login")]

        return mail

    @property
    def _verify_lifetime(self) -> timedelta:
        # A verification link may wait in an inbox as long as the grace lasts (at least
        # the usual lifetime): it proves the address, nothing more.
        hours = max(self.settings.verification_grace_hours, 1)
        minutes = self.settings.link_lifetime_minutes
        return max(timedelta(hours=hours), timedelta(minutes=minutes))

    async def send(self, mail: list[OutgoingMail]) -> None:
        """Queue mail no other write causes, then wake the sender. Raises StorageError."""
        await self.kit.accounts.send(mail)
        self.kit.wake_sender()

    # -- link pages ---------------------------------------------------------------------
    async def claim(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        token: str,
        purpose: LinkPurpose,
        *,
        redeem: bool,
    ) -> LinkClaim | None:
        """The link's claim, or None after answering the failure page."""
        claim = None
        if token and len(token) <= _MAX_TOKEN:
            try:
                if redeem:
                    claim = await self.links.redeem(
                        token, purpose, fingerprint_of=self._fingerprint_of
                    )
                else:
                    claim = await self.links.peek(
                        token, purpose, fingerprint_of=self._fingerprint_of
                    )
            except StorageError as exc:
                logger.error("consentgate: a mail link could not be checked: %s", exc)
                await self.kit.answer.unavailable(
                    scope, receive, send, visitor, "/", "unavailable_login"
                )
                return None
        if claim is None:
            message = self.kit.answer.texts(visitor)["link_invalid"]
            failure = RequestFailure(Failure.LINK_INVALID, message=message)
            login = f"{self.kit.prefix}/login"
            await self.kit.answer.fail(scope, receive, send, visitor, failure, login)
        return claim

    async def link_page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        purpose: LinkPurpose,
        path: str,
        keys: tuple[str, str, str],
        *,
        new_password: bool = False,
    ) -> None:
        token = Request(scope).query_params.get("token", "")
        claim = await self.claim(scope, receive, send, visitor, token, purpose, redeem=False)
        if claim is None:
            return
        title, intro, button = keys
        min_length = self.kit.accounts.min_password_length

        def render(page: AccountPage) -> str:
            return render_link_page(
                page,
                action=path,
                token=token,
                title_key=title,
                intro_key=intro,
                button_key=button,
                new_password=new_password,
                min_password_length=min_length,
            )

        await self.kit.answer.page(scope, receive, send, visitor, "/", render)

    # -- verify -------------------------------------------------------------------------
    async def verify_page(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self.link_page(
            scope,
            receive,
            send,
            visitor,
            LinkPurpose.VERIFY_EMAIL,
            "/verify",
            ("verify_title", "verify_intro", "verify_button"),
        )

    async def verify(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        token = first(posted.form, "token")
        claim = await self.claim(
            scope, receive, send, visitor, token, LinkPurpose.VERIFY_EMAIL, redeem=True
        )
        if claim is None:
            return
        await self._verified_and_signed_in(scope, receive, send, visitor, claim)

    async def _verified_and_signed_in(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, claim: LinkClaim
    ) -> None:
        """The link proved the reader reads the address: verified, and signed in here."""
        next_url = safe_next(claim.data or "/")
        try:
            await self.kit.accounts.mark_verified(claim.user_id)
        except StorageError as exc:
            logger.error("consentgate: address not marked verified: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_login"
            )
            return
        await self.kit.signed_in(scope, receive, send, visitor, claim.user_id, next_url)

    async def resend_page(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        if visitor.user_id is None:
            await self.kit.to_login(f"{self.kit.prefix}/verify/resend", next_url)(
                scope, receive, send
            )
            return

        def render(page: AccountPage) -> str:
            return render_link_page(
                page,
                action="/verify/resend",
                token="",
                title_key="resend_title",
                intro_key="resend_intro",
                button_key="resend_button",
            )

        await self.kit.answer.page(scope, receive, send, visitor, next_url, render)

    async def resend(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        next_url = posted.next_url
        if visitor.user_id is None:
            await self.kit.to_login(f"{self.kit.prefix}/verify/resend", next_url)(
                scope, receive, send
            )
            return
        try:
            user = await self.kit.accounts.user(visitor.user_id)
            if user is None or user.email_verified_at is not None:
                await see_other(next_url)(scope, receive, send)
                return
            if not await self.kit.limits.mail_allowed(visitor.client_ip, user.email):
                await self._too_many(scope, receive, send, visitor, next_url)
                return
            token = self.issue(LinkPurpose.VERIFY_EMAIL, user, next_url, self._verify_lifetime)
            url = self.url(scope, "/verify", token)
            await self.send([self.mails.verify_email(user.email, visitor.language, url)])
        except StorageError as exc:
            logger.error("consentgate: verification mail not queued: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_mail"
            )
            return
        await self._notice(scope, receive, send, visitor, "sent_title", "verify_sent")

    # -- sign in by link ------------------------------------------------------------------
    async def magic_redeem(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        claim = await self.claim(
            scope,
            receive,
            send,
            visitor,
            first(posted.form, "token"),
            LinkPurpose.SIGN_IN,
            redeem=True,
        )
        if claim is not None:
            await self._verified_and_signed_in(scope, receive, send, visitor, claim)

    # -- password reset -------------------------------------------------------------------
    async def reset(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        """Checks the new password before using the link up: a weak one costs no link."""
        token, new = first(posted.form, "token"), first(posted.form, "new_password")
        purpose = LinkPurpose.RESET_PASSWORD
        claim = await self.claim(scope, receive, send, visitor, token, purpose, redeem=False)
        if claim is None:
            return
        accounts = self.kit.accounts
        try:
            user = await accounts.user(claim.user_id)
        except StorageError:
            user = None
        weakness = password_problem(
            new, user.email if user else "", min_length=accounts.min_password_length
        )
        if weakness is not None:
            min_length = accounts.min_password_length

            def render(page: AccountPage) -> str:
                return render_link_page(
                    page,
                    action="/password/reset",
                    token=token,
                    title_key="reset_title",
                    intro_key="reset_intro",
                    button_key="reset_button",
                    new_password=True,
                    error=weakness,
                    min_password_length=min_length,
                )

            await self.kit.answer.page(scope, receive, send, visitor, "/", render, status=400)
            return
        claim = await self.claim(scope, receive, send, visitor, token, purpose, redeem=True)
        if claim is None:
            return
        next_url = safe_next(claim.data or "/")
        try:
            problem = await accounts.set_password(claim.user_id, new)
            if problem is None:
                # Whoever knew the old password may hold a session: all of them end.
                await self.kit.sessions.end_all(claim.user_id)
                await accounts.mark_verified(claim.user_id)
        except StorageError as exc:
            logger.error("consentgate: password not reset, storage failed: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_login"
            )
            return
        if problem is not None:
            refused = RequestFailure(Failure.PASSWORD_NOT_CHANGED, message=problem.message)
            await self.kit.answer.fail(scope, receive, send, visitor, refused, next_url)
            return
        await self.kit.signed_in(scope, receive, send, visitor, claim.user_id, next_url)

    # -- shared pieces ------------------------------------------------------------------
    async def _email_form(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        action: str,
        keys: tuple[str, str, str],
    ) -> None:
        next_url = safe_next(Request(scope).query_params.get("next"))
        title, intro, button = keys

        def render(page: AccountPage) -> str:
            return render_email_request_page(
                page, action=action, title_key=title, intro_key=intro, button_key=button
            )

        await self.kit.answer.page(scope, receive, send, visitor, next_url, render)

    async def _email_request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        posted: Posted,
        mail: Callable[[User, str], OutgoingMail],
        keys: tuple[str, str, str],
        action: str,
    ) -> None:
        """The same answer whether the address has an account: only the mail differs
        (there is none for an unknown address)."""
        email, next_url = first(posted.form, "email"), posted.next_url
        if normalize_email(email) is None:
            title, intro, button = keys
            errors = {"email": self.kit.answer.texts(visitor)["email_invalid"]}

            def render(page: AccountPage) -> str:
                return render_email_request_page(
                    page,
                    action=action,
                    title_key=title,
                    intro_key=intro,
                    button_key=button,
                    email=email,
                    errors=errors,
                )

            await self.kit.answer.page(scope, receive, send, visitor, next_url, render, status=400)
            return
        try:
            if not await self.kit.limits.mail_allowed(visitor.client_ip, email):
                await self._too_many(scope, receive, send, visitor, next_url)
                return
            user = await self.kit.accounts.user_by_email(email)
            if user is not None:
                await self.send([mail(user, visitor.language)])
        except StorageError as exc:
            logger.error("consentgate: link mail not queued: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, next_url, "unavailable_mail"
            )
            return
        await self._notice(scope, receive, send, visitor, "sent_title", "link_sent")

    async def _notice(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        title: str,
        message: str,
    ) -> None:
        def render(page: AccountPage) -> str:
            return render_notice_page(page, title, message)

        await self.kit.answer.page(scope, receive, send, visitor, "/", render)

    async def _too_many(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, next_url: str
    ) -> None:
        wait = self.kit.limits.mail_limit.window_seconds
        await self.kit.answer.too_many(scope, receive, send, visitor, next_url, wait)


def _origin(scope: Scope) -> str:
    url = Request(scope).url
    return f"{url.scheme}://{url.netloc}"
