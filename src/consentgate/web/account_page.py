"""The reader's account page and what it leads to.

GET  {prefix}/account                    who, sessions, password, address, policy,
                                         newsletters, consent history, data, deletion
POST {prefix}/account/email              asks to change the address (password needed):
                                         a link to the new address, a notice to the old
GET  {prefix}/account/email/confirm?token=…   the new address's link page
POST {prefix}/account/email/confirm      makes the change
GET  {prefix}/account/export             the export page
POST {prefix}/account/export             everything held about the reader, as a JSON file
GET  {prefix}/account/delete             the confirmation form (password and a box)
POST {prefix}/account/delete             erases the account as ``consentgate forget`` does

Every page needs a signed-in reader (else: sign in, then back here). The export is a
POST (CSRF-protected) so that no other site can make a browser download it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from consentgate.accounts.links import LinkPurpose
from consentgate.accounts.service import normalize_email
from consentgate.operator.privacy import forget_user, user_report
from consentgate.operator.store import iso
from consentgate.storage import StorageError, User
from consentgate.storage.records import SubscriptionRecord, email_key
from consentgate.web.account_flow_templates import (
    AccountSummary,
    NewsletterSection,
    render_account_overview,
    render_delete_page,
    render_export_page,
    render_notice_page,
    render_subscriptions,
)
from consentgate.web.account_kit import AccountHandler, AccountKit, Posted
from consentgate.web.account_links import MailFlows
from consentgate.web.account_templates import AccountPage
from consentgate.web.errors import Failure
from consentgate.web.forms import RequestFailure, first, private_headers
from consentgate.web.newsletter_templates import render_newsletter_section

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = ["AccountPageEndpoints"]

logger = logging.getLogger("consentgate")


class AccountPageEndpoints:
    def __init__(self, kit: AccountKit, flows: MailFlows) -> None:
        """``flows``: the change of address goes through a mail's link like theirs."""
        self.kit = kit
        self.flows = flows
        self.path = f"{kit.prefix}/account"

    def routes(self) -> dict[tuple[str, str], AccountHandler]:
        path, post = self.path, self.kit.post
        return {
            ("GET", path): self.overview,
            ("POST", f"{path}/email"): post(self.change_email),
            ("GET", f"{path}/email/confirm"): self.email_confirm_page,
            ("POST", f"{path}/email/confirm"): post(self.email_confirm),
            ("GET", f"{path}/export"): self.export_page,
            ("POST", f"{path}/export"): post(self.export),
            ("GET", f"{path}/delete"): self.delete_page,
            ("POST", f"{path}/delete"): post(self.delete),
        }

    async def _signed_in_user(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, path: str
    ) -> User | None:
        """The reader's account, or None after answering (sign in first, or a 503)."""
        if visitor.user_id is None:
            await self.kit.to_login(path, self.path)(scope, receive, send)
            return None
        try:
            user = await self.kit.accounts.user(visitor.user_id)
        except StorageError as exc:
            logger.error("consentgate: account page unavailable: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, "/", "unavailable_login"
            )
            return None
        if user is None:  # erased meanwhile (on another browser)
            await self.kit.to_login(path, self.path)(scope, receive, send)
        return user

    # -- the page -----------------------------------------------------------------------
    async def overview(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        user = await self._signed_in_user(scope, receive, send, visitor, self.path)
        if user is None:
            return
        storage = self.kit.storage
        try:
            summary = AccountSummary(
                email=user.email,
                verified_at=user.email_verified_at,
                created_at=user.created_at,
                policy=await storage.latest_acceptance(user.id, "privacy_policy"),
                consents=await storage.consents_for_user(user.id),
                subscriptions=await storage.subscriptions_for(user.id),
            )
        except StorageError as exc:
            logger.error("consentgate: account page unavailable: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, "/", "unavailable_login"
            )
            return
        section = await self._newsletter_section(scope, receive, send, visitor, user)
        if section is None:
            return
        min_length = self.kit.accounts.min_password_length

        def render(page: AccountPage) -> str:
            return render_account_overview(
                page, summary, newsletters=section, min_password_length=min_length
            )

        await self.kit.answer.page(scope, receive, send, visitor, self.path, render)

    async def _newsletter_section(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, user: User
    ) -> NewsletterSection | None:
        """The configured lists with a button each (the newsletter feature's section),
        else the ledger's rows as they are; None after answering a storage failure."""
        newsletters = self.kit.newsletters
        if newsletters is None or not newsletters.lists:
            return render_subscriptions
        try:
            states = await newsletters.current(user.id)
        except StorageError as exc:
            logger.error("consentgate: account page unavailable: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, "/", "unavailable_login"
            )
            return None

        def section(page: AccountPage, rows: Sequence[SubscriptionRecord]) -> str:
            return render_newsletter_section(states, page.lang, page.csrf_token, page.prefix)

        return section

    # -- change of address ----------------------------------------------------------------
    async def change_email(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        """The password, then a link to the new address (which confirms) and a notice to
        the old one. An address that has an account already gets nothing, and the answer
        is the same: the form tells nobody which addresses have accounts."""
        user_id, kit = visitor.user_id, self.kit
        if user_id is None:
            await kit.to_login(self.path, self.path)(scope, receive, send)
            return
        new_email = normalize_email(first(posted.form, "new_email"))
        limits = kit.limits
        keys = limits.login_keys(visitor.client_ip, f"user:{user_id}")
        try:
            wait = await limits.login_wait(keys)
            if wait > 0:
                await kit.answer.too_many(scope, receive, send, visitor, self.path, wait)
                return
            if new_email is None:
                message = kit.answer.texts(visitor)["email_invalid"]
                refused = RequestFailure(Failure.EMAIL_CHANGE_REFUSED, message=message)
                await kit.answer.fail(scope, receive, send, visitor, refused, self.path)
                return
            user = await kit.accounts.check_password(user_id, first(posted.form, "password"))
            if user is None:
                await limits.login_failed(keys)
                message = kit.answer.texts(visitor)["wrong_password"]
                refused = RequestFailure(Failure.EMAIL_CHANGE_REFUSED, message=message)
                await kit.answer.fail(scope, receive, send, visitor, refused, self.path)
                return
            if email_key(new_email) == email_key(user.email):
                # Not a change: a "your address becomes <your address>" notice would only
                # puzzle the reader. Said after the password, so it tells nobody else.
                message = kit.answer.texts(visitor)["email_unchanged"]
                refused = RequestFailure(Failure.EMAIL_CHANGE_REFUSED, message=message)
                await kit.answer.fail(scope, receive, send, visitor, refused, self.path)
                return
            if not await limits.mail_allowed(visitor.client_ip, new_email):
                wait = limits.mail_limit.window_seconds
                await kit.answer.too_many(scope, receive, send, visitor, self.path, wait)
                return
            flows, lang = self.flows, visitor.language
            mail = [flows.mails.email_change_notice(user.email, lang, new_email)]
            if await kit.accounts.user_by_email(new_email) is None:
                token = flows.issue(LinkPurpose.CHANGE_EMAIL, user, new_email)
                url = flows.url(scope, "/account/email/confirm", token)
                mail.insert(0, flows.mails.email_change(new_email, lang, url))
            await flows.send(mail)
        except StorageError as exc:
            logger.error("consentgate: change of address not started: %s", exc)
            await kit.answer.unavailable(
                scope, receive, send, visitor, self.path, "unavailable_mail"
            )
            return

        def render(page: AccountPage) -> str:
            return render_notice_page(page, "sent_title", "email_change_sent")

        await kit.answer.page(scope, receive, send, visitor, self.path, render)

    async def email_confirm_page(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self.flows.link_page(
            scope,
            receive,
            send,
            visitor,
            LinkPurpose.CHANGE_EMAIL,
            "/account/email/confirm",
            ("email_confirm_title", "email_confirm_intro", "email_confirm_button"),
        )

    async def email_confirm(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        kit = self.kit
        claim = await self.flows.claim(
            scope,
            receive,
            send,
            visitor,
            first(posted.form, "token"),
            LinkPurpose.CHANGE_EMAIL,
            redeem=True,
        )
        if claim is None:
            return
        try:
            changed = await kit.accounts.change_email(claim.user_id, claim.data)
        except StorageError as exc:
            logger.error("consentgate: address not changed: %s", exc)
            await kit.answer.unavailable(
                scope, receive, send, visitor, self.path, "unavailable_login"
            )
            return
        if not changed:
            message = kit.answer.texts(visitor)["email_taken_now"]
            refused = RequestFailure(Failure.EMAIL_CHANGE_REFUSED, message=message)
            await kit.answer.fail(scope, receive, send, visitor, refused, self.path)
            return
        # The link proved the new address is the reader's: signed in here with it.
        await kit.signed_in(scope, receive, send, visitor, claim.user_id, self.path)

    # -- the reader's data ----------------------------------------------------------------
    async def export_page(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        path = f"{self.path}/export"
        if await self._signed_in_user(scope, receive, send, visitor, path) is None:
            return
        await self.kit.answer.page(scope, receive, send, visitor, self.path, render_export_page)

    async def export(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        user = await self._signed_in_user(scope, receive, send, visitor, f"{self.path}/export")
        if user is None:
            return
        storage = self.kit.storage
        try:
            report = await user_report(storage, user.email)
        except StorageError as exc:
            logger.error("consentgate: data export unavailable: %s", exc)
            await self.kit.answer.unavailable(
                scope, receive, send, visitor, self.path, "unavailable_login"
            )
            return
        if report is None:
            await self.kit.to_login(self.path, self.path)(scope, receive, send)
            return
        data = report.to_json()
        verified = user.email_verified_at
        data["account"]["email_verified_at"] = iso(verified) if verified else None
        body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
        headers = {
            **private_headers(),
            "content-disposition": 'attachment; filename="account-data.json"',
            "x-content-type-options": "nosniff",
        }
        await Response(body, media_type="application/json", headers=headers)(scope, receive, send)

    async def delete_page(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        path = f"{self.path}/delete"
        if await self._signed_in_user(scope, receive, send, visitor, path) is None:
            return
        await self.kit.answer.page(scope, receive, send, visitor, self.path, render_delete_page)

    async def delete(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, posted: Posted
    ) -> None:
        """The password and the ticked box, then ``consentgate forget``'s erasure; every
        session ends and this browser's session cookie goes."""
        kit, path = self.kit, f"{self.path}/delete"
        user_id = visitor.user_id
        if user_id is None:
            await kit.to_login(path, self.path)(scope, receive, send)
            return
        limits = kit.limits
        keys = limits.login_keys(visitor.client_ip, f"user:{user_id}")
        try:
            wait = await limits.login_wait(keys)
            if wait > 0:
                await kit.answer.too_many(scope, receive, send, visitor, self.path, wait)
                return
            user = await kit.accounts.check_password(user_id, first(posted.form, "password"))
            if user is None:
                await limits.login_failed(keys)
            texts = kit.answer.texts(visitor)
            error = (
                texts["wrong_password"]
                if user is None
                else None
                if first(posted.form, "confirm")
                else texts["delete_confirm_missing"]
            )
            if user is None or error is not None:

                def render(page: AccountPage) -> str:
                    return render_delete_page(page, error=error)

                await kit.answer.page(scope, receive, send, visitor, self.path, render, status=400)
                return
            await forget_user(kit.storage, user)
            await kit.sessions.end_all(user.id)
        except StorageError as exc:
            logger.error("consentgate: account not erased: %s", exc)
            await kit.answer.unavailable(
                scope, receive, send, visitor, self.path, "unavailable_delete"
            )
            return
        await self._deleted(scope, receive, send, visitor)

    async def _deleted(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        """ "Your account is deleted", in the site's layout like every reader page, with
        the session cookie cleared."""
        kit = self.kit
        token, cookie = kit.pages.csrf_token_for(visitor)
        page = kit.answer.account_page(visitor, token, "/")
        document = render_notice_page(page, "deleted_title", "deleted_message")
        html = await kit.pages.dressed(visitor.language, document, scope)
        response = Response(html, media_type="text/html", headers=dict(kit.pages.page_headers))
        response.headers.append(
            "set-cookie", kit.pages.cookies.session.expired(scheme=visitor.scheme)
        )
        if cookie:
            response.headers.append("set-cookie", cookie)
        await response(scope, receive, send)
