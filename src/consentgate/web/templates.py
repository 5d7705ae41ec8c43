"""Server-rendered HTML: the consent banner, the settings link, the settings page.

Everything works without JavaScript (plain forms posting to ``{prefix}/consent``);
``banner.js`` only enhances it. No inline scripts, styles or event handlers, so a strict
Content-Security-Policy works; pass ``nonce`` to have it put on our <link>/<script>.
Every interpolated value goes through :func:`_e` (:func:`consentgate.markup.escape`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from consentgate.config import Category, RegionMode
from consentgate.consent.texts import banner_intro, category_text, resolve_texts
from consentgate.markup import escape as _e

if TYPE_CHECKING:
    from consentgate.consent.receipt import ReceiptView

__all__ = [
    "BannerContext",
    "render_banner",
    "render_message_page",
    "render_receipt_page",
    "render_settings_control",
    "render_settings_page",
]


@dataclass(frozen=True, slots=True)
class BannerContext:
    prefix: str
    lang: str
    texts: Mapping[str, str]
    categories: Sequence[Category]
    granted: frozenset[str]
    decided: bool
    csrf_token: str
    next_url: str
    policy_url: str
    policy_version: str
    site_name: str
    gpc: bool
    mode: RegionMode
    static_version: str
    nonce: str | None = None
    #: A reader signed in to our accounts: the fixed link leads to the account page.
    signed_in: bool = False


def _t(ctx: BannerContext, key: str) -> str:
    """An escaped text; a missing key renders as empty rather than failing a page."""
    return _e(ctx.texts.get(key, ""))


def _nonce_attr(nonce: str | None) -> str:
    return f' nonce="{_e(nonce)}"' if nonce else ""


def _static(prefix: str, name: str, version: str) -> str:
    return _e(f"{prefix}/static/{name}?v={quote(version, safe='')}")


def _stylesheet(prefix: str, version: str, nonce: str | None) -> str:
    href = _static(prefix, "banner.css", version)
    return f'<link rel="stylesheet" href="{href}"{_nonce_attr(nonce)}>'


def _script(prefix: str, version: str, nonce: str | None) -> str:
    src = _static(prefix, "banner.js", version)
    return f'<script src="{src}" defer{_nonce_attr(nonce)}></script>'


def _settings_url(ctx: BannerContext) -> str:
    return f"{ctx.prefix}/settings?next={quote(ctx.next_url, safe='/')}"


def _hidden_fields(ctx: BannerContext) -> str:
    return (
        f'<input type="hidden" name="csrf_token" value="{_e(ctx.csrf_token)}">'
        f'<input type="hidden" name="next" value="{_e(ctx.next_url)}">'
        f'<input type="hidden" name="lang" value="{_e(ctx.lang)}">'
    )


def _policy_link(ctx: BannerContext) -> str:
    version = ctx.texts.get("policy_version", "").replace("{version}", ctx.policy_version)
    return (
        f'<a class="cg-link" href="{_e(ctx.policy_url)}">{_t(ctx, "policy_link")}</a>'
        f" ({_e(version)})"
    )


def _ticked(ctx: BannerContext, category: Category) -> bool:
    """Only the reader's own recorded choice ticks a box: never a default, never GPC."""
    return ctx.decided and category.id in ctx.granted


def _category_rows(ctx: BannerContext, id_prefix: str) -> str:
    rows = []
    for category in ctx.categories:
        title, description = category_text(ctx.texts, category)
        cid = _e(category.id)
        desc_id = f"{id_prefix}d-{cid}"
        if category.required:
            control = (
                '<input type="checkbox" checked disabled>'
                f' {_e(title)} <span class="cg-on">{_t(ctx, "always_on")}</span>'
            )
        else:
            checked = " checked" if _ticked(ctx, category) else ""
            control = (
                f'<input type="checkbox" name="category" value="{cid}"{checked}'
                f' aria-describedby="{desc_id}"> {_e(title)}'
            )
        rows.append(
            f'<div class="cg-cat"><label>{control}</label>'
            f'<p id="{desc_id}">{_e(description)}</p></div>'
        )
    return "".join(rows)


def _main_buttons(ctx: BannerContext) -> str:
    """Reject and accept: same element, same class, side by side — equal weight."""
    return (
        '<div class="cg-actions">'
        f'<button type="submit" name="action" value="reject_all" class="cg-btn">'
        f"{_t(ctx, 'reject_all')}</button>"
        f'<button type="submit" name="action" value="accept_all" class="cg-btn">'
        f"{_t(ctx, 'accept_all')}</button></div>"
    )


def _save_button(ctx: BannerContext) -> str:
    return (
        f'<button type="submit" name="action" value="save" class="cg-btn">'
        f"{_t(ctx, 'save_choices')}</button>"
    )


def _gpc_note(ctx: BannerContext) -> str:
    return f'<p class="cg-gpc">{_t(ctx, "gpc_note")}</p>' if ctx.gpc else ""


def render_banner(ctx: BannerContext) -> str:
    """The consent dialog, inserted before ``</body>`` while the reader is undecided."""
    return (
        _stylesheet(ctx.prefix, ctx.static_version, ctx.nonce)
        + f'<div id="consentgate-banner" role="dialog" aria-modal="false"'
        f' aria-labelledby="cg-title" aria-describedby="cg-intro" lang="{_e(ctx.lang)}"'
        f' data-settings-label="{_t(ctx, "settings_link")}"'
        f' data-settings-url="{_e(_settings_url(ctx))}">'
        f'<form class="cg-form" method="post" action="{_e(ctx.prefix)}/consent"'
        f' data-cg="banner">{_hidden_fields(ctx)}'
        f'<h2 id="cg-title">{_t(ctx, "title")}</h2>'
        f'<p id="cg-intro">{_e(banner_intro(ctx.texts, ctx.categories, ctx.mode))}</p>'
        + _gpc_note(ctx)
        + _main_buttons(ctx)
        + f"<details><summary>{_t(ctx, 'customise')}</summary>"
        f"<fieldset><legend>{_t(ctx, 'categories_legend')}</legend>"
        + _category_rows(ctx, "cg-")
        + "</fieldset>"
        + _save_button(ctx)
        + "</details>"
        + f"<p>{_policy_link(ctx)}</p></form></div>"
        + _script(ctx.prefix, ctx.static_version, ctx.nonce)
    )


def render_settings_control(ctx: BannerContext) -> str:
    """The small fixed "Cookie settings" link shown on every page after a decision; for
    a reader signed in to our accounts, an "Account" link (``{prefix}/account``) beside
    it, in the same place. The settings link stays: withdrawing must stay one click away
    (GDPR Art. 7(3)), signed in or not."""
    settings = (
        f'<a id="consentgate-settings-link" href="{_e(_settings_url(ctx))}"'
        f' lang="{_e(ctx.lang)}">{_t(ctx, "settings_link")}</a>'
    )
    if ctx.signed_in:
        return (
            _stylesheet(ctx.prefix, ctx.static_version, ctx.nonce)
            + f'<div id="consentgate-links" lang="{_e(ctx.lang)}">'
            f'<a id="consentgate-account-link" href="{_e(ctx.prefix)}/account">'
            f"{_t(ctx, 'account_link')}</a>{settings}</div>"
        )
    return _stylesheet(ctx.prefix, ctx.static_version, ctx.nonce) + settings


def _document(lang: str, title: str, head_extra: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="{_e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title>{head_extra}</head>"
        f'<body class="cg-page"><main class="cg-main">{body}</main></body></html>'
    )


def _history_table(ctx: BannerContext, history: Sequence[tuple[str, str, str]]) -> str:
    if not history:
        return ""

    def action_label(action: str) -> str:
        if action in ("grant", "reject", "update", "withdraw"):
            return _t(ctx, f"history_{action}")
        return _e(action)

    rows = "".join(
        f"<tr><td>{_e(when)}</td><td>{action_label(action)}</td><td>{_e(categories)}</td></tr>"
        for when, action, categories in history
    )
    return (
        f'<h2>{_t(ctx, "history_heading")}</h2><table class="cg-table"><thead><tr>'
        f'<th scope="col">{_t(ctx, "history_when")}</th>'
        f'<th scope="col">{_t(ctx, "history_action")}</th>'
        f'<th scope="col">{_t(ctx, "history_categories")}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _state_table(ctx: BannerContext) -> str:
    rows = []
    for category in ctx.categories:
        title, _ = category_text(ctx.texts, category)
        if category.required:
            cell = f"<td>{_t(ctx, 'always_on')}</td>"
        else:
            state = _t(ctx, "state_on" if category.id in ctx.granted else "state_off")
            cell = f'<td data-cg-state="{_e(category.id)}">{state}</td>'
        rows.append(f'<tr><th scope="row">{_e(title)}</th>{cell}</tr>')
    return f'<table class="cg-table"><tbody>{"".join(rows)}</tbody></table>'


def render_settings_page(
    ctx: BannerContext,
    *,
    consent_id: str | None,
    decided_at: str | None,
    history: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The full settings page: current state, change it, withdraw, receipt, policy.

    ``history`` rows are ``(when, action, categories)``, already formatted for display;
    a ledger action (``grant``, ``reject``, ``update``, ``withdraw``) is shown with its
    translated label (text key ``history_<action>``), anything else as given.
    """
    if ctx.decided:
        facts = []
        if decided_at:
            facts.append(f"<dt>{_t(ctx, 'decided_at')}</dt><dd>{_e(decided_at)}</dd>")
        if consent_id:
            facts.append(f"<dt>{_t(ctx, 'consent_id')}</dt><dd><code>{_e(consent_id)}</code></dd>")
        status = f'<dl class="cg-facts">{"".join(facts)}</dl>' if facts else ""
    else:
        status = f"<p>{_t(ctx, 'state_undecided')}</p>"
    receipt = (
        f'<p><a class="cg-link" href="{_e(ctx.prefix)}/consent/receipt">'
        f"{_t(ctx, 'receipt_link')}</a></p>"
        if ctx.decided and consent_id
        else ""
    )
    body = (
        f'<h1 id="cg-title">{_t(ctx, "settings_title")}</h1>'
        f"<p>{_t(ctx, 'settings_intro')}</p>"
        + _gpc_note(ctx)
        + f"<h2>{_t(ctx, 'state_heading')}</h2>"
        + status
        + _state_table(ctx)
        + '<p id="cg-status" role="status" aria-live="polite"'
        f' data-saved="{_t(ctx, "saved")}" data-on="{_t(ctx, "state_on")}"'
        f' data-off="{_t(ctx, "state_off")}"></p>'
        + f'<form class="cg-form" method="post" action="{_e(ctx.prefix)}/consent"'
        f' data-cg="settings">{_hidden_fields(ctx)}'
        f"<fieldset><legend>{_t(ctx, 'categories_legend')}</legend>"
        + _category_rows(ctx, "cg-s")
        + '</fieldset><div class="cg-actions">'
        + _save_button(ctx)
        + "</div>"
        + _main_buttons(ctx)
        + "</form>"
        + f'<form class="cg-form cg-withdraw" method="post"'
        f' action="{_e(ctx.prefix)}/consent/withdraw" data-cg="withdraw">'
        f"{_hidden_fields(ctx)}<p>{_t(ctx, 'withdraw_note')}</p>"
        f'<button type="submit" name="action" value="withdraw" class="cg-btn">'
        f"{_t(ctx, 'withdraw')}</button></form>"
        + receipt
        + f"<p>{_policy_link(ctx)}</p>"
        + _history_table(ctx, history)
        + f'<p><a class="cg-link" href="{_e(ctx.next_url)}">{_t(ctx, "back")}</a></p>'
    )
    title = ctx.texts.get("settings_title", "")
    if ctx.site_name:
        title = f"{title} – {ctx.site_name}"
    head = _stylesheet(ctx.prefix, ctx.static_version, ctx.nonce) + _script(
        ctx.prefix, ctx.static_version, ctx.nonce
    )
    return _document(ctx.lang, title, head, body)


def render_message_page(
    ctx_lang: str,
    title: str,
    message: str,
    back_url: str | None,
    *,
    prefix: str,
    static_version: str = "",
    nonce: str | None = None,
) -> str:
    """A small complete page for errors (403 CSRF, 400, 503); texts are plain strings."""
    back = ""
    if back_url:
        label = resolve_texts(ctx_lang, {}).get("back", "Back")
        back = f'<p><a class="cg-link" href="{_e(back_url)}">{_e(label)}</a></p>'
    body = f"<h1>{_e(title)}</h1><p>{_e(message)}</p>{back}"
    return _document(ctx_lang, title, _stylesheet(prefix, static_version, nonce), body)


def render_receipt_page(
    ctx: BannerContext, view: ReceiptView, texts: Mapping[str, str], *, json_url: str
) -> str:
    """The consent receipt for a person: the id to quote, when, under which policy, what
    was chosen, who is responsible; the JSON receipt as a download (``json_url``).
    ``texts`` is the ``[receipt]`` wording; the category and state labels are the
    banner's (``ctx.texts``)."""

    def t(key: str, **values: str) -> str:
        text = _e(texts.get(key, ""))
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    titles = {c.id: category_text(ctx.texts, c)[0] for c in ctx.categories}
    required = {c.id for c in ctx.categories if c.required}
    choices = "".join(
        f'<tr><th scope="row">{_e(titles.get(cid, cid))}</th>'
        f'<td data-cg-choice="{_e(cid)}">'
        + (
            _t(ctx, "always_on")
            if cid in required
            else _t(ctx, "state_on" if granted else "state_off")
        )
        + "</td></tr>"
        for cid, granted in view.choices
    )
    policy = (
        f'<a class="cg-link" href="{_e(view.policy_url)}">'
        f"{t('policy_value', version=_e(view.policy_version))}</a>"
    )
    controller = [f"<dt>{t('controller_heading')}</dt><dd>{_e(view.controller_name)}</dd>"]
    if view.controller_contact:
        controller.append(
            f"<dt>{t('controller_contact')}</dt><dd>{_e(view.controller_contact)}</dd>"
        )
    if view.controller_email:
        mail = _e(view.controller_email)
        controller.append(
            f'<dt>{t("controller_email")}</dt><dd><a class="cg-link" href="mailto:{mail}">'
            f"{mail}</a></dd>"
        )
    if view.controller_url:
        url = _e(view.controller_url)
        controller.append(
            f'<dt>{t("controller_web")}</dt><dd><a class="cg-link" href="{url}">{url}</a></dd>'
        )
    history = [
        (when, action, ", ".join(titles.get(cid, cid) for cid in granted))
        for when, action, granted in view.history
    ]
    settings_url = f"{ctx.prefix}/settings"
    body = (
        f'<h1 id="cg-title">{t("title")}</h1>'
        f"<p>{t('intro', site=_e(ctx.site_name))}</p>"
        '<dl class="cg-facts">'
        f"<dt>{t('id_label')}</dt><dd><code data-cg-receipt-id>{_e(view.receipt_id)}</code></dd>"
        f"<dt>{t('recorded_label')}</dt><dd>{_e(view.recorded)}</dd>"
        f"<dt>{t('policy_label')}</dt><dd>{policy}</dd>" + "".join(controller) + "</dl>"
        f"<h2>{t('choices_heading')}</h2>"
        '<table class="cg-table"><thead><tr>'
        f'<th scope="col">{t("category_column")}</th><th scope="col">{t("choice_column")}</th>'
        f"</tr></thead><tbody>{choices}</tbody></table>"
        + _history_table(ctx, history)
        + f'<p><a class="cg-link" href="{_e(json_url)}" download>{t("download")}</a></p>'
        f'<p><a class="cg-link" href="{_e(settings_url)}">{t("change")}</a></p>'
    )
    title = texts.get("title", "")
    if ctx.site_name:
        title = f"{title} – {ctx.site_name}"
    return _document(ctx.lang, title, _stylesheet(ctx.prefix, ctx.static_version, ctx.nonce), body)
