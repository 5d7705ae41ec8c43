"""The newsletters' HTML: the registration form's choices, the account page's section, and
the small pages a link in a mail opens (confirm, unsubscribe, done, link not valid).

As the account pages (web/account_templates.py): every value escaped, no inline script
or style, boxes never ticked by us. Each list is shown with its name, description and
frequency, the words the subscription ledger records as shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from consentgate.accounts.newsletters import NewsletterList, NewsletterState, newsletter_texts
from consentgate.markup import escape as _e

# The account pages' document: the page shell splits exactly this shape (web/shell.py).
from consentgate.web.account_templates import AccountPage, _document

__all__ = [
    "render_confirm_page",
    "render_newsletter_choices",
    "render_newsletter_message",
    "render_newsletter_section",
    "render_unsubscribe_page",
]


def _fill(texts: Mapping[str, str], key: str, lst: NewsletterList | None, lang: str) -> str:
    """An escaped text with the list's escaped name and frequency put in."""
    text = _e(texts.get(key, ""))
    if lst is not None:
        text = text.replace("{name}", f"<strong>{_e(lst.text('name', lang))}</strong>")
        text = text.replace("{frequency}", _e(lst.text("frequency", lang)))
    return text


def _describe(lst: NewsletterList, lang: str) -> str:
    return (
        f"<strong>{_e(lst.text('name', lang))}</strong>"
        f' <span class="cg-hint">({_e(lst.text("frequency", lang))})</span><br>'
        f"{_e(lst.text('description', lang))}"
    )


def render_newsletter_choices(
    lists: Sequence[NewsletterList], lang: str, texts: Mapping[str, str] | None = None
) -> str:
    """The registration form's fieldset: one unticked box per list (field ``newsletters``,
    the list id as value); nothing at all without lists."""
    if not lists:
        return ""
    texts = texts if texts is not None else newsletter_texts(lang)
    boxes = "".join(
        f'<div class="cg-cat"><label><input type="checkbox" name="newsletters"'
        f' value="{_e(lst.id)}"> {_describe(lst, lang)}</label></div>'
        for lst in lists
    )
    return (
        '<fieldset class="cg-newsletters" aria-describedby="cg-newsletters-hint">'
        f"<legend>{_e(texts['choices_legend'])}</legend>"
        f'<p id="cg-newsletters-hint" class="cg-hint">{_e(texts["choices_hint"])}</p>'
        f"{boxes}</fieldset>"
    )


def render_newsletter_section(
    state: Sequence[NewsletterState],
    lang: str,
    csrf_token: str,
    prefix: str,
    texts: Mapping[str, str] | None = None,
) -> str:
    """The account page's section: each list, the reader's standing, and a button to
    subscribe, send the confirmation again, or unsubscribe (CSRF-protected posts that
    come back to the account page)."""
    if not state:
        return ""
    texts = texts if texts is not None else newsletter_texts(lang)
    items = []
    for entry in state:
        lst = entry.list
        if entry.state == "confirmed":
            status, action, button = "state_confirmed", "withdraw", "unsubscribe_button"
        elif entry.state == "requested":
            status, action, button = "state_requested", "subscribe", "resend_button"
        else:
            status, action, button = "state_none", "subscribe", "subscribe_button"
        withdraw = ""
        if entry.state == "requested":  # waiting: it can still be called off
            withdraw = _list_form(prefix, "withdraw", lst, csrf_token, texts["unsubscribe_button"])
        items.append(
            f'<li class="cg-cat" data-list="{_e(lst.id)}"><p>{_describe(lst, lang)}</p>'
            f'<p class="cg-state">{_e(texts[status])}</p>'
            + _list_form(prefix, action, lst, csrf_token, texts[button])
            + withdraw
            + "</li>"
        )
    return (
        '<section class="cg-newsletters" aria-labelledby="cg-newsletters-title">'
        f'<h2 id="cg-newsletters-title">{_e(texts["section_title"])}</h2>'
        f"<ul>{''.join(items)}</ul></section>"
    )


def _list_form(prefix: str, action: str, lst: NewsletterList, csrf_token: str, label: str) -> str:
    return (
        f'<form class="cg-form" method="post" action="{_e(prefix)}/newsletters/{action}">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        f'<input type="hidden" name="list" value="{_e(lst.id)}">'
        f'<input type="hidden" name="next" value="{_e(prefix)}/account">'
        f'<button type="submit" class="cg-btn">{_e(label)}</button></form>'
    )


def render_confirm_page(page: AccountPage, lst: NewsletterList, token: str) -> str:
    """What a confirmation link opens: the list and a button (the POST confirms; a mail
    scanner's GET changes nothing)."""
    texts = newsletter_texts(page.lang)
    title = texts["confirm_title"]
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1>'
        f"<p>{_fill(texts, 'confirm_intro', lst, page.lang)}</p>"
        f"<p>{_e(lst.text('description', page.lang))}</p>"
        f'<form class="cg-form" method="post" action="{_e(page.prefix)}/newsletters/confirm"'
        ' aria-labelledby="cg-title">'
        f'<input type="hidden" name="csrf_token" value="{_e(page.csrf_token)}">'
        f'<input type="hidden" name="token" value="{_e(token)}">'
        f'<div class="cg-actions"><button type="submit" class="cg-btn">'
        f"{_e(texts['confirm_button'])}</button></div></form>"
    )
    return _document(page, title, body)


def render_unsubscribe_page(page: AccountPage, lst: NewsletterList, token: str) -> str:
    """What the unsubscribe link opens for a person: the list and a button. The form
    posts to the link itself; the token is the authority, so no CSRF token is needed."""
    texts = newsletter_texts(page.lang)
    title = texts["unsubscribe_title"]
    action = f"{page.prefix}/newsletters/unsubscribe?token={quote(token, safe='')}"
    body = (
        f'<h1 id="cg-title">{_e(title)}</h1>'
        f"<p>{_fill(texts, 'unsubscribe_intro', lst, page.lang)}</p>"
        f'<form class="cg-form" method="post" action="{_e(action)}" aria-labelledby="cg-title">'
        '<input type="hidden" name="via" value="page">'
        f'<div class="cg-actions"><button type="submit" class="cg-btn">'
        f"{_e(texts['unsubscribe_button'])}</button></div></form>"
    )
    return _document(page, title, body)


def render_newsletter_message(
    page: AccountPage, title_key: str, message_key: str, lst: NewsletterList | None = None
) -> str:
    """A page that says what happened (subscribed, unsubscribed, the link does not work)."""
    texts = newsletter_texts(page.lang)
    title = texts[title_key]
    body = (
        f"<h1>{_e(title)}</h1><p>{_fill(texts, message_key, lst, page.lang)}</p>"
        f'<p><a class="cg-link" href="{_e(page.prefix)}/account">'
        f"{_e(texts['section_title'])}</a></p>"
    )
    return _document(page, title, body)
