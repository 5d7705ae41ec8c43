"""How the account pages answer: a form page with the reader's CSRF token, or a failure.

Failures go through the one failure path of our routes (``PageKit.fail``: JSON for a
client that asked for it, the operator's ``failure_response`` hook if configured),
drawn here as a small page in the account pages' style and the reader's language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from consentgate.web.account_templates import AccountPage, account_texts, render_account_message
from consentgate.web.errors import Failure
from consentgate.web.failures import FailurePage
from consentgate.web.forms import RequestFailure
from consentgate.web.pages import PageKit

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = ["AccountResponses"]

# The title of a failure's page, by failure (the message says the rest).
_FAILURE_TITLES = {
    Failure.TOO_MANY_ATTEMPTS: "too_many_title",
    Failure.STORAGE_UNAVAILABLE: "unavailable_title",
}


class AccountResponses:
    """How the account pages answer: a form page with its CSRF token, or a failure."""

    def __init__(self, pages: PageKit) -> None:
        self.pages = pages
        self.config = pages.config

    def texts(self, visitor: Visitor) -> dict[str, str]:
        return account_texts(visitor.language)

    def account_page(self, visitor: Visitor, csrf_token: str, next_url: str) -> AccountPage:
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
            texts=self.texts(visitor),
        )

    async def page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        next_url: str,
        render: Callable[[AccountPage], str],
        *,
        status: int = 200,
    ) -> None:
        """Render a page with a CSRF token, setting the CSRF cookie if it is new; in the
        site's layout when one is configured (``PageKit.reader_page``)."""
        token, cookie = self.pages.csrf_token_for(visitor)
        page = self.account_page(visitor, token, next_url)
        # Through PageKit.reader_page: in the site's layout when one is configured.
        await self.pages.reader_page(
            scope, receive, send, visitor, render(page), status=status, cookie=cookie
        )

    # -- failures: the one failure path (PageKit.fail), drawn in the account pages' style
    async def fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        failure: RequestFailure,
        back_url: str | None,
    ) -> None:
        page = self.failure_page(visitor, back_url)
        await self.pages.fail(scope, receive, send, visitor, failure, page=page)

    def failure_page(self, visitor: Visitor, back_url: str | None) -> FailurePage:
        texts = self.texts(visitor)
        page = self.account_page(visitor, "", back_url or "/")

        def render(failure: Failure, message: str) -> str:
            title = texts[_FAILURE_TITLES.get(failure, "error_title")]
            return render_account_message(page, title, message, back_url)

        return FailurePage(render, self.pages.page_headers)

    async def too_many(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        next_url: str,
        wait_seconds: float,
    ) -> None:
        message = self.texts(visitor)["too_many_message"]
        failure = RequestFailure(
            Failure.TOO_MANY_ATTEMPTS, message=message, retry_after=wait_seconds
        )
        await self.fail(scope, receive, send, visitor, failure, next_url)

    async def unavailable(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        visitor: Visitor,
        next_url: str,
        message_key: str,
    ) -> None:
        message = self.texts(visitor)[message_key]
        failure = RequestFailure(Failure.STORAGE_UNAVAILABLE, message=message)
        await self.fail(scope, receive, send, visitor, failure, next_url)
