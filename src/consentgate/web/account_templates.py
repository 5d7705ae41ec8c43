"""Server-rendered account pages: register, sign in, accept a new privacy policy.

Like web/templates.py: complete small pages on the banner stylesheet (``.cg-page``),
no inline script or style (strict CSP works; ``nonce`` goes on the <link>), every
interpolated value escaped by :func:`_e`. Errors sit next to their field, tied with
``aria-describedby`` and ``aria-invalid``, and are summarised in a ``role="alert"`` box
that links to each field. Boxes of consent are never ticked by us, not even when a
form comes back with an error: the reader ticks them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from consentgate.i18n import locale
from consentgate.markup import escape as _e

__all__ = [
    "AccountPage",
    "account_texts",
    "render_account_message",
    "render_login_page",
    "render_policy_page",
    "render_register_page",
]


def account_texts(lang: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The account pages' wording in ``lang`` (``i18n/locales/<lang>.toml``, English where
    it has no text), then the operator's overrides."""
    texts = dict(locale(lang, "accounts"))
    # The mail flows' and the account page's wording (a table of its own).
    texts.update(locale(lang, "account_flows"))
    if overrides:
        texts.update(overrides)
    return texts


@dataclass(frozen=True, slots=True)
class AccountPage:
    """What every account page needs, whatever form it shows."""

    prefix: str
    lang: str
    csrf_token: str
    next_url: str
    policy_url: str
    policy_version: str
    site_name: str
    static_version: str
    nonce: str | None = None
    texts: Mapping[str, str] = field(default_factory=lambda: account_texts("en"))


def _t(page: AccountPage, key: str, **values: str) -> str:
    """An escaped text with ``{name}`` placeholders filled by escaped values."""
    text = _e(page.texts.get(key, ""))
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _policy_link(page: AccountPage) -> str:
    return f'<a class="cg-link" href="{_e(page.policy_url)}">{_t(page, "policy_link")}</a>'


def _url(page: AccountPage, name: str) -> str:
    return f"{page.prefix}/{name}?next={quote(page.next_url, safe='/')}"


def _document(page: AccountPage, title: str, body: str) -> str:
    full_title = f"{title} – {page.site_name}" if page.site_name else title
    version = quote(page.static_version, safe="")
    nonce = f' nonce="{_e(page.nonce)}"' if page.nonce else ""
    return (
        f'<!DOCTYPE html><html lang="{_e(page.lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(full_title)}</title>"
        f'<link rel="stylesheet" href="{_e(page.prefix)}/static/banner.css?v={_e(version)}"'
        f"{nonce}>"
        f'<link rel="stylesheet" href="{_e(page.prefix)}/static/wall.css?v={_e(version)}"'
        f"{nonce}></head>"
        f'<body class="cg-page"><main class="cg-main">{body}</main></body></html>'
    )


def _hidden(page: AccountPage) -> str:
    return (
        f'<input type="hidden" name="csrf_token" value="{_e(page.csrf_token)}">'
        f'<input type="hidden" name="next" value="{_e(page.next_url)}">'
    )


def _error_summary(page: AccountPage, errors: Mapping[str, str]) -> str:
    if not errors:
        return ""
    items = "".join(
        f'<li><a href="#cg-{_e(name)}">{_e(message)}</a></li>' for name, message in errors.items()
    )
    return (
        '<div class="cg-errors" role="alert" tabindex="-1">'
        f"<p>{_t(page, 'errors_heading')}</p><ul>{items}</ul></div>"
    )


def _error(name: str, errors: Mapping[str, str]) -> str:
    message = errors.get(name)
    return f'<p id="cg-{name}-error" class="cg-error">{_e(message)}</p>' if message else ""


def _described(name: str, errors: Mapping[str, str], *extra: str) -> str:
    """aria-describedby (hint and error) and aria-invalid for one control."""
    ids = [*extra]
    if name in errors:
        ids.append(f"cg-{name}-error")
    attrs = f' aria-describedby="{" ".join(ids)}"' if ids else ""
    return attrs + (' aria-invalid="true"' if name in errors else "")


def _email_field(page: AccountPage, email: str, errors: Mapping[str, str]) -> str:
    return (
        f'<p class="cg-field"><label for="cg-email">{_t(page, "email_label")}</label><br>'
        + _error("email", errors)
        + '<input id="cg-email" name="email" type="email" autocomplete="email"'
        f' spellcheck="false" required maxlength="254" value="{_e(email)}"'
        f"{_described('email', errors)}></p>"
    )


def _password_field(
    page: AccountPage, errors: Mapping[str, str], *, new: bool, min_length: int
) -> str:
    hint = ""
    extra: tuple[str, ...] = ()
    if new:
        hint = (
            f'<span id="cg-password-hint" class="cg-hint">'
            f"{_t(page, 'password_hint', min=str(min_length))}</span><br>"
        )
        extra = ("cg-password-hint",)
    autocomplete = "new-password" if new else "current-password"
    minlength = f' minlength="{min_length}"' if new else ""
    return (
        f'<p class="cg-field"><label for="cg-password">{_t(page, "password_label")}</label><br>'
        + hint
        + _error("password", errors)
        + f'<input id="cg-password" name="password" type="password"'
        f' autocomplete="{autocomplete}" required{minlength} maxlength="1024"'
        f"{_described('password', errors, *extra)}></p>"
    )


def _policy_checkbox(page: AccountPage, key: str, errors: Mapping[str, str]) -> str:
    label = _t(page, key, policy_link=_policy_link(page), version=_e(page.policy_version))
    return (
        '<div class="cg-cat">'
        + _error("accept_policy", errors)
        + '<label><input id="cg-accept_policy" type="checkbox" name="accept_policy" value="yes"'
        f" required{_described('accept_policy', errors)}> {label}"
        f' <span class="cg-on">{_t(page, "required")}</span></label></div>'
    )


def render_register_page(
    page: AccountPage,
    *,
    email: str = "",
    errors: Mapping[str, str] | None = None,
    min_password_length: int = 10,
    newsletter_choices: str = "",
) -> str:
    """The registration form; ``errors`` maps field names (email, password,
    accept_policy) to messages. The password is never put back into the page.
    ``newsletter_choices``: the lists' fieldset, already rendered by the caller
    (web/newsletter_templates.py builds on this module, so this one cannot use it)."""
    errors = errors or {}
    title = page.texts.get("register_title", "")
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1>'
        f"<p>{_t(page, 'register_intro', site=_e(page.site_name))}</p>"
        + _error_summary(page, errors)
        + f'<form class="cg-form" method="post" action="{_e(page.prefix)}/register"'
        ' aria-labelledby="cg-title" novalidate>'
        + _hidden(page)
        + _email_field(page, email, errors)
        + _password_field(page, errors, new=True, min_length=min_password_length)
        + _policy_checkbox(page, "accept_policy", errors)
        + newsletter_choices
        + f'<div class="cg-actions"><button type="submit" class="cg-btn">'
        f"{_t(page, 'register_button')}</button></div></form>" + f"<p>{_t(page, 'have_account')} "
        f'<a class="cg-link" href="{_e(_url(page, "login"))}">{_t(page, "sign_in_link")}</a></p>'
    )
    return _document(page, title, body)


def render_login_page(page: AccountPage, *, email: str = "", error: str | None = None) -> str:
    """The sign-in form; one ``error`` for both fields, so it tells nothing apart."""
    title = page.texts.get("login_title", "")
    described = ' aria-describedby="cg-login-error" aria-invalid="true"' if error else ""
    alert = (
        f'<div class="cg-errors" role="alert" tabindex="-1">'
        f'<p id="cg-login-error">{_e(error)}</p></div>'
        if error
        else ""
    )
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1>'
        + alert
        + f'<form class="cg-form" method="post" action="{_e(page.prefix)}/login"'
        ' aria-labelledby="cg-title">'
        + _hidden(page)
        + f'<p class="cg-field"><label for="cg-email">{_t(page, "email_label")}</label><br>'
        '<input id="cg-email" name="email" type="email" autocomplete="username"'
        f' spellcheck="false" required maxlength="254" value="{_e(email)}"{described}></p>'
        + f'<p class="cg-field"><label for="cg-password">{_t(page, "password_label")}</label><br>'
        '<input id="cg-password" name="password" type="password"'
        f' autocomplete="current-password" required maxlength="1024"{described}></p>'
        + f'<div class="cg-actions"><button type="submit" class="cg-btn">'
        f"{_t(page, 'login_button')}</button></div></form>"
        + f'<p><a class="cg-link" href="{_e(_url(page, "password/forgot"))}">'
        f"{_t(page, 'forgot_link')}</a> · "
        f'<a class="cg-link" href="{_e(_url(page, "login/link"))}">'
        f"{_t(page, 'magic_link_link')}</a></p>" + f"<p>{_t(page, 'no_account')} "
        f'<a class="cg-link" href="{_e(_url(page, "register"))}">{_t(page, "register_link")}'
        "</a></p>"
    )
    return _document(page, title, body)


def render_policy_page(page: AccountPage, *, error: str | None = None) -> str:
    """Asks a signed-in reader to accept a new privacy-policy version."""
    errors = {"accept_policy": error} if error else {}
    title = page.texts.get("policy_title", "")
    intro = _t(
        page, "policy_intro", policy_link=_policy_link(page), version=_e(page.policy_version)
    )
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1><p>{intro}</p>'
        + _error_summary(page, errors)
        + f'<form class="cg-form" method="post" action="{_e(page.prefix)}/policy"'
        ' aria-labelledby="cg-title" novalidate>'
        + _hidden(page)
        + _policy_checkbox(page, "policy_accept", errors)
        + f'<div class="cg-actions"><button type="submit" class="cg-btn">'
        f"{_t(page, 'policy_button')}</button></div></form>"
        + f'<form class="cg-form cg-withdraw" method="post" action="{_e(page.prefix)}/logout">'
        + _hidden(page)
        + f"<p>{_t(page, 'not_you')}</p>"
        f'<button type="submit" class="cg-btn">{_t(page, "sign_out")}</button></form>'
    )
    return _document(page, title, body)


def render_account_message(
    page: AccountPage, title: str, message: str, back_url: str | None
) -> str:
    """A small page for 403, 429 and 503 answers; ``title`` and ``message`` are plain text."""
    back = (
        f'<p><a class="cg-link" href="{_e(back_url)}">{_t(page, "back")}</a></p>'
        if back_url
        else ""
    )
    body = f"<h1>{_e(title)}</h1><p>{_e(message)}</p>{back}"
    return _document(page, title, body)
