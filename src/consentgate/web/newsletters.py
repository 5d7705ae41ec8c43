"""The newsletter endpoints.

GET  {prefix}/newsletters/confirm?token=…      the confirmation link: a page with a button
POST {prefix}/newsletters/confirm              the button (CSRF): "confirmed", once
GET  {prefix}/newsletters/unsubscribe?token=…  the unsubscribe link opened by a person:
                                               a page with a button; changes nothing
POST {prefix}/newsletters/unsubscribe?token=…  RFC 8058 one-click (body
                                               ``List-Unsubscribe=One-Click``), or the
                                               page's button (``via=page``)
POST {prefix}/newsletters/subscribe            the account page (CSRF, signed in)
POST {prefix}/newsletters/withdraw             the account page (CSRF, signed in)

The one-click POST comes from the reader's mail provider, not from a browser on our
site: no cookies, no CSRF token, any Origin. It needs none of them: the signed token in
the URL is the authority, and all it can do is take one reader off one list. It answers
200 quickly and the same however often it is repeated (RFC 8058 senders may retry), and
never redirects (receivers do not follow redirects).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from consentgate.accounts.newsletters import NewsletterList, Newsletters
from consentgate.accounts.service import Accounts, RequestContext
from consentgate.storage import StorageError
from consentgate.storage.records import SubscriptionMethod
from consentgate.web.account_responses import AccountResponses
from consentgate.web.account_templates import AccountPage
from consentgate.web.errors import Failure
from consentgate.web.forms import (
    Form,
    RequestFailure,
    check_csrf,
    first,
    media_type,
    parse_urlencoded,
    private_headers,
    read_body,
    read_form,
    see_other,
)
from consentgate.web.newsletter_templates import (
    render_confirm_page,
    render_newsletter_message,
    render_unsubscribe_page,
)
from consentgate.web.pages import PageKit
from consentgate.web.security import safe_next

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = ["NewsletterEndpoints", "is_one_click"]

logger = logging.getLogger("consentgate")

Handler = Callable[[Scope, Receive, Send, "Visitor"], Awaitable[None]]
# A one-click body is tiny; anything near this is not one.
MAX_ONE_CLICK_BODY = 8 * 1024
_ONE_CLICK_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", ""})
_MULTIPART_ONE_CLICK = re.compile(
    rb'name="?List-Unsubscribe"?[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\nOne-Click\r\n', re.IGNORECASE
)


def is_one_click(content_type: str, body: bytes) -> bool:
    """Whether a POST body says ``List-Unsubscribe=One-Click`` (RFC 8058 section 3.2:
    sent as multipart/form-data, or as application/x-www-form-urlencoded)."""
    if content_type == "multipart/form-data":
        return _MULTIPART_ONE_CLICK.search(body) is not None
    return "One-Click" in _urlencoded(content_type, body).get("List-Unsubscribe", [])


class NewsletterEndpoints:
    def __init__(self, pages: PageKit, accounts: Accounts, newsletters: Newsletters) -> None:
        self.pages = pages
        self.accounts = accounts
        self.newsletters = newsletters
        self.prefix = pages.config.prefix
        self.answer = AccountResponses(pages)

    def routes(self) -> dict[tuple[str, str], Handler]:
        base = f"{self.prefix}/newsletters"
        return {
            ("GET", f"{base}/confirm"): self.confirm_form,
            ("POST", f"{base}/confirm"): self.confirm,
            ("GET", f"{base}/unsubscribe"): self.unsubscribe_form,
            ("POST", f"{base}/unsubscribe"): self.unsubscribe,
            ("POST", f"{base}/subscribe"): self.subscribe_from_account,
            ("POST", f"{base}/withdraw"): self.withdraw_from_account,
        }

    # -- double opt-in --------------------------------------------------------------------
    async def confirm_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self._link_page(
            scope, receive, send, visitor, self.newsletters.peek_confirm, render_confirm_page
        )

    async def confirm(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        request = Request(scope, receive)
        form = await self._checked_form(scope, receive, send, visitor, request)
        if form is None:
            return
        token = first(form, "token")
        try:
            row = await self.newsletters.confirm(
                token, self._context(visitor, request), visitor.language
            )
        except StorageError as exc:
            await self._unavailable(scope, receive, send, visitor, exc)
            return
        if row is None:
            await self._invalid_link(scope, receive, send, visitor)
            return
        await self._message(
            scope, receive, send, visitor, "confirmed_title", "confirmed_message", row.list_id
        )

    # -- unsubscribing by link -------------------------------------------------------------
    async def unsubscribe_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self._link_page(
            scope,
            receive,
            send,
            visitor,
            self.newsletters.unsubscribe_target,
            render_unsubscribe_page,
        )

    async def _link_page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        target_of: Callable[[str], Awaitable[tuple[Any, ...] | None]],
        render_page: Callable[[AccountPage, NewsletterList, str], str],
    ) -> None:
        """The page a mail's link opens: what the token names, and a button to act on it
        (a GET changes nothing: mail scanners fetch links)."""
        token = Request(scope).query_params.get("token", "")
        try:
            target = await target_of(token)
        except StorageError as exc:
            await self._unavailable(scope, receive, send, visitor, exc)
            return
        if target is None:
            await self._invalid_link(scope, receive, send, visitor)
            return
        lst: NewsletterList = target[1]

        def render(page: AccountPage) -> str:
            return render_page(page, lst, token)

        await self.answer.page(scope, receive, send, visitor, "/", render)

    async def unsubscribe(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        """One-click or the page's button. Deliberately no Origin or CSRF check (see the
        module's docstring); the body is read bounded, the token checked by signature."""
        request = Request(scope, receive)
        token = request.query_params.get("token", "")
        content_type = media_type(request)
        try:
            # The two types RFC 8058 allows (and none: a bare button post); anything else
            # is refused before a byte of it is read, as on every other route of ours.
            if content_type not in _ONE_CLICK_TYPES:
                raise RequestFailure(Failure.FORM_MEDIA_TYPE, f"Got {content_type!r}.")
            body = await read_body(request, MAX_ONE_CLICK_BODY)
            if content_type != "multipart/form-data":
                parse_urlencoded(body)  # a form we cannot read is said so, not guessed at
        except RequestFailure as failure:
            await _plain(scope, receive, send, failure.failure.status, str(failure))
            return
        one_click = is_one_click(content_type, body)
        by_page = not one_click and "page" in _urlencoded(content_type, body).get("via", [])
        if not one_click and not by_page:
            await _plain(scope, receive, send, 400, "Expected List-Unsubscribe=One-Click.")
            return
        try:
            target = await self.newsletters.unsubscribe_target(token)
            if target is not None:
                user_id, lst, mail_lang = target
                method = (
                    SubscriptionMethod.ONE_CLICK if one_click else SubscriptionMethod.EMAIL_LINK
                )
                # One-click shows the reader nothing: the words of record are the list's
                # in the language of the mail the link came in.
                lang = mail_lang if one_click else visitor.language
                context = self._context(visitor, request)
                await self.newsletters.unsubscribe(user_id, lst.id, method, context, lang)
        except StorageError as exc:
            logger.error("consentgate: unsubscription not recorded: %s", exc)
            if one_click:  # a 5xx makes the mail provider try again later
                await _plain(scope, receive, send, 503, "Not recorded; please retry.")
            else:
                await self._unavailable(scope, receive, send, visitor, exc)
            return
        if target is None:
            if one_click:
                await _plain(scope, receive, send, 400, "This unsubscribe link is not valid.")
            else:
                await self._invalid_link(scope, receive, send, visitor)
            return
        if one_click:
            await _plain(scope, receive, send, 200, "Unsubscribed.")
            return
        await self._message(
            scope, receive, send, visitor, "unsubscribed_title", "unsubscribed_message", lst.id
        )

    # -- the account page -------------------------------------------------------------------
    async def subscribe_from_account(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self._from_account(scope, receive, send, visitor, subscribe=True)

    async def withdraw_from_account(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        await self._from_account(scope, receive, send, visitor, subscribe=False)

    async def _from_account(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, *, subscribe: bool
    ) -> None:
        request = Request(scope, receive)
        form = await self._checked_form(scope, receive, send, visitor, request)
        if form is None:
            return
        next_url = safe_next(first(form, "next") or f"{self.prefix}/account")
        user_id = visitor.user_id
        if user_id is None:
            await see_other(f"{self.prefix}/login")(scope, receive, send)
            return
        list_id = first(form, "list")
        if self.newsletters.find(list_id) is None:
            failure = RequestFailure(Failure.BAD_FORM, "(no such newsletter)")
            await self.answer.fail(scope, receive, send, visitor, failure, next_url)
            return
        context = self._context(visitor, request)
        method = SubscriptionMethod.ACCOUNT
        try:
            if subscribe:
                user = await self.accounts.storage.user_by_id(user_id)
                if user is None:
                    await see_other(f"{self.prefix}/login")(scope, receive, send)
                    return
                await self.newsletters.request(user, list_id, method, context, visitor.language)
            else:
                await self.newsletters.unsubscribe(
                    user_id, list_id, method, context, visitor.language
                )
        except StorageError as exc:
            await self._unavailable(scope, receive, send, visitor, exc)
            return
        await see_other(next_url)(scope, receive, send)

    # -- shared pieces ------------------------------------------------------------------------
    def _context(self, visitor: Visitor, request: Request) -> RequestContext:
        return self.accounts.context(visitor.client_ip, request.headers.get("user-agent"))

    async def _checked_form(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, request: Request
    ) -> Form | None:
        """The urlencoded form, CSRF-checked like every account form, or None when the
        failure has been answered."""
        try:
            form = await read_form(request)
            cookie_token = visitor.cookies.get(self.pages.config.cookie_names.csrf)
            check_csrf(request, self.pages.csrf, cookie_token, first(form, "csrf_token"))
        except RequestFailure as failure:
            await self.answer.fail(scope, receive, send, visitor, failure, None)
            return None
        return form

    async def _invalid_link(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor
    ) -> None:
        def render(page: AccountPage) -> str:
            return render_newsletter_message(page, "link_invalid_title", "link_invalid_message")

        await self.answer.page(scope, receive, send, visitor, "/", render, status=400)

    async def _message(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        title_key: str,
        message_key: str,
        list_id: str,
    ) -> None:
        lst: NewsletterList | None = self.newsletters.find(list_id)

        def render(page: AccountPage) -> str:
            return render_newsletter_message(page, title_key, message_key, lst)

        await self.answer.page(scope, receive, send, visitor, "/", render)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, visitor: Visitor, exc: Exception
    ) -> None:
        logger.error("consentgate: newsletter storage failed: %s", exc)
        failure = RequestFailure(Failure.STORAGE_UNAVAILABLE)
        await self.answer.fail(scope, receive, send, visitor, failure, None)


def _urlencoded(content_type: str, body: bytes) -> Form:
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        return parse_urlencoded(body)
    except RequestFailure:
        return {}


async def _plain(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    await PlainTextResponse(text, status_code=status, headers=private_headers())(
        scope, receive, send
    )
