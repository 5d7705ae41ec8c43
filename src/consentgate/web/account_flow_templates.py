"""The pages of the mail flows (verify, sign-in link, password reset, change of address)
and of the account page, in the style of web/account_templates.py (same helpers, same
rules: escaped values, no inline script or style, errors tied to their fields).

A link from a mail opens a page whose button POSTs: mail scanners fetch links, and a
GET must never use one up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from consentgate.markup import escape as _e
from consentgate.storage.records import AcceptanceRecord, ConsentRecord, SubscriptionRecord
from consentgate.web.account_templates import (
    AccountPage,
    _document,
    _email_field,
    _error,
    _error_summary,
    _hidden,
    _t,
)

__all__ = [
    "AccountSummary",
    "NewsletterSection",
    "render_account_overview",
    "render_delete_page",
    "render_email_request_page",
    "render_export_page",
    "render_link_page",
    "render_notice_page",
    "render_subscriptions",
]

#: The account page's newsletter section, its heading included: given the page (texts,
#: CSRF token) and the reader's ledger rows (oldest first), its HTML. With lists
#: configured it is the newsletter feature's (web/newsletter_templates.py); without,
#: :func:`render_subscriptions` lists whatever rows there are.
NewsletterSection = Callable[[AccountPage, Sequence[SubscriptionRecord]], str]


def _date(moment: datetime | None) -> str:
    return _e(moment.strftime("%Y-%m-%d %H:%M UTC")) if moment is not None else ""


def _button_form(
    page: AccountPage, action: str, label: str, *fields: str, next_url: str | None = None
) -> str:
    """A form of one button (and ``fields``); ``next_url`` replaces the page's next."""
    hidden = _hidden(page)
    if next_url is not None:
        hidden = _hidden(replace(page, next_url=next_url))
    return (
        f'<form class="cg-form" method="post" action="{_e(page.prefix)}{action}">'
        + hidden
        + "".join(fields)
        + f'<div class="cg-actions"><button type="submit" class="cg-btn">{label}</button>'
        "</div></form>"
    )


def _password_input(page: AccountPage, name: str, label_key: str, autocomplete: str) -> str:
    return (
        f'<p class="cg-field"><label for="cg-{name}">{_t(page, label_key)}</label><br>'
        f'<input id="cg-{name}" name="{name}" type="password" autocomplete="{autocomplete}"'
        ' required maxlength="1024"></p>'
    )


def render_notice_page(page: AccountPage, title_key: str, message_key: str) -> str:
    """ "Look in your inbox" and the like: a title and a message, both texts' keys."""
    title = page.texts.get(title_key, "")
    body = f'<h1 id="cg-title">{_e(title)}</h1><p role="status">{_t(page, message_key)}</p>'
    return _document(page, title, body)


def render_email_request_page(
    page: AccountPage,
    *,
    action: str,
    title_key: str,
    intro_key: str,
    button_key: str,
    email: str = "",
    errors: Mapping[str, str] | None = None,
) -> str:
    """Asks for an address to send a link to (sign-in link, password reset)."""
    errors = errors or {}
    title = page.texts.get(title_key, "")
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1><p>{_t(page, intro_key)}</p>'
        + _error_summary(page, errors)
        + _button_form(page, action, _t(page, button_key), _email_field(page, email, errors))
    )
    return _document(page, title, body)


def render_link_page(
    page: AccountPage,
    *,
    action: str,
    token: str,
    title_key: str,
    intro_key: str,
    button_key: str,
    new_password: bool = False,
    error: str | None = None,
    min_password_length: int = 10,
) -> str:
    """The page a mail's link opens: one button (and, for a reset, the new password)."""
    title = page.texts.get(title_key, "")
    fields = [f'<input type="hidden" name="token" value="{_e(token)}">']
    if new_password:
        errors = {"new_password": error} if error else {}
        fields.append(
            f'<p class="cg-field"><label for="cg-new_password">'
            f"{_t(page, 'new_password_label')}</label><br>"
            f'<span id="cg-new_password-hint" class="cg-hint">'
            f"{_t(page, 'password_hint', min=str(min_password_length))}</span><br>"
            + _error("new_password", errors)
            + '<input id="cg-new_password" name="new_password" type="password"'
            f' autocomplete="new-password" required minlength="{min_password_length}"'
            ' maxlength="1024" aria-describedby="cg-new_password-hint'
            + (' cg-new_password-error" aria-invalid="true"' if error else '"')
            + "></p>"
        )
    body = f'<h1 id="cg-title">{_e(title)}</h1><p>{_t(page, intro_key)}</p>' + _button_form(
        page, action, _t(page, button_key), *fields
    )
    return _document(page, title, body)


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """What the account page shows about the signed-in reader."""

    email: str
    verified_at: datetime | None
    created_at: datetime
    policy: AcceptanceRecord | None
    consents: Sequence[ConsentRecord]
    subscriptions: Sequence[SubscriptionRecord]


def render_subscriptions(page: AccountPage, rows: Sequence[SubscriptionRecord]) -> str:
    """The default newsletter section: each list's latest state, from the ledger."""
    latest: dict[str, SubscriptionRecord] = {}
    for row in rows:
        latest[row.list_id] = row
    heading = f"<h2>{_t(page, 'account_newsletters_heading')}</h2>"
    if not latest:
        return f"{heading}<p>{_t(page, 'account_no_newsletters')}</p>"
    items = "".join(
        f"<li>{_e(list_id)}: {_e(row.action)} ({_date(row.recorded_at)})</li>"
        for list_id, row in sorted(latest.items())
    )
    return f'{heading}<section class="cg-newsletters"><ul>{items}</ul></section>'


def _consent_history(page: AccountPage, consents: Sequence[ConsentRecord]) -> str:
    if not consents:
        return f"<p>{_t(page, 'account_no_consents')}</p>"
    rows = "".join(
        f"<tr><td>{_date(rec.recorded_at)}</td><td>{_e(rec.action)}</td>"
        f"<td>{_e(', '.join(rec.granted) or '-')}</td></tr>"
        for rec in consents
    )
    return (
        '<table class="cg-history"><thead><tr>'
        f"<th>{_t(page, 'account_when')}</th><th>{_t(page, 'account_action')}</th>"
        f"<th>{_t(page, 'account_granted')}</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_account_overview(
    page: AccountPage,
    summary: AccountSummary,
    *,
    newsletters: NewsletterSection = render_subscriptions,
    notice_key: str | None = None,
    min_password_length: int = 10,
) -> str:
    """The account page: who, sessions, password, address, policy, newsletters,
    consent history, export, deletion."""
    title = page.texts.get("account_title", "")
    notice = f'<p role="status" class="cg-notice">{_t(page, notice_key)}</p>' if notice_key else ""
    if summary.verified_at is not None:
        verified = f"<p>{_t(page, 'account_verified', date=_date(summary.verified_at))}</p>"
    else:
        verified = f"<p>{_t(page, 'account_unverified')}</p>" + _button_form(
            page, "/verify/resend", _t(page, "resend_button")
        )
    if summary.policy is not None:
        policy = _t(
            page,
            "account_policy",
            version=_e(summary.policy.policy_version),
            date=_date(summary.policy.recorded_at),
        )
    else:
        policy = _t(page, "account_policy_none")
    new_password = (
        f'<p class="cg-field"><label for="cg-new_password">'
        f"{_t(page, 'new_password_label')}</label><br>"
        '<input id="cg-new_password" name="new_password" type="password"'
        f' autocomplete="new-password" required minlength="{min_password_length}"'
        ' maxlength="1024"></p>'
    )
    new_email = (
        f'<p class="cg-field"><label for="cg-new_email">{_t(page, "new_email_label")}</label>'
        '<br><input id="cg-new_email" name="new_email" type="email" autocomplete="email"'
        ' spellcheck="false" required maxlength="254"></p>'
    )
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1>'
        + notice
        + f"<p>{_t(page, 'account_signed_in_as', email=_e(summary.email))}</p>"
        + verified
        + _button_form(page, "/logout", _t(page, "sign_out"), next_url="/")
        + f"<h2>{_t(page, 'account_sessions_heading')}</h2>"
        + f"<p>{_t(page, 'account_sessions_intro')}</p>"
        + _button_form(page, "/logout/everywhere", _t(page, "sign_out_everywhere"), next_url="/")
        + f"<h2>{_t(page, 'account_password_heading')}</h2>"
        + _button_form(
            page,
            "/password",
            _t(page, "change_password_button"),
            _password_input(page, "current_password", "current_password_label", "current-password"),
            new_password,
        )
        + f"<h2>{_t(page, 'account_email_heading')}</h2>"
        + f"<p>{_t(page, 'account_email_intro')}</p>"
        + _button_form(
            page,
            "/account/email",
            _t(page, "change_email_button"),
            new_email,
            _password_input(page, "password", "current_password_label", "current-password"),
        )
        + f"<h2>{_t(page, 'account_policy_heading')}</h2><p>{policy}</p>"
        + f"<h2>{_t(page, 'account_newsletters_heading')}</h2>"
        + f'<section class="cg-newsletters">{newsletters(page, summary.subscriptions)}</section>'
        + f"<h2>{_t(page, 'account_consents_heading')}</h2>"
        + _consent_history(page, summary.consents)
        + f"<h2>{_t(page, 'account_data_heading')}</h2>"
        + f"<p>{_t(page, 'account_export_intro')}</p>"
        + _button_form(page, "/account/export", _t(page, "export_button"))
        + f'<p><a class="cg-link" href="{_e(page.prefix)}/account/delete">'
        f"{_t(page, 'delete_link')}</a></p>"
    )
    return _document(page, title, body)


def render_export_page(page: AccountPage) -> str:
    title = page.texts.get("export_title", "")
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1><p>{_t(page, "account_export_intro")}</p>'
        + _button_form(page, "/account/export", _t(page, "export_button"))
    )
    return _document(page, title, body)


def render_delete_page(page: AccountPage, *, error: str | None = None) -> str:
    """Deleting needs the password and a ticked box (never ticked by us)."""
    title = page.texts.get("delete_title", "")
    errors = {"confirm": error} if error else {}
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1><p>{_t(page, "delete_intro")}</p>'
        + _error_summary(page, errors)
        + _button_form(
            page,
            "/account/delete",
            _t(page, "delete_button"),
            _password_input(page, "password", "current_password_label", "current-password"),
            '<div class="cg-cat">'
            + _error("confirm", errors)
            + '<label><input id="cg-confirm" type="checkbox" name="confirm" value="yes"'
            f" required> {_t(page, 'delete_confirm')}</label></div>",
        )
        + f'<p><a class="cg-link" href="{_e(page.prefix)}/account">{_t(page, "back")}</a></p>'
    )
    return _document(page, title, body)
