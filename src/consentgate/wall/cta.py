"""The registration call to action shown where the article stops, and the wall page.

HTML only, no CSS: styling hooks are classes (``cg-cta``, ``cg-cta__heading`` …) and the
stylesheet is the lead's. No inline scripts, styles or handlers, so a strict
Content-Security-Policy holds. Every interpolated value is escaped with
the one escape of :mod:`consentgate.markup`; links must be relative or http(s) URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from consentgate.i18n import LANGUAGES, table
from consentgate.markup import escape as _e
from consentgate.wall.access import AccessReason

__all__ = [
    "BUILTIN_CTA_TEXTS",
    "CTA_ID",
    "CtaTexts",
    "cta_texts",
    "render_cta",
    "render_wall_page",
]

CTA_ID = "consentgate-cta"
# Which wording each walled reason gets; full-access reasons have no CTA at all.
_REGISTER_REASONS = frozenset(
    {
        AccessReason.METER_EXHAUSTED,
        AccessReason.METER_TAMPERED,
        AccessReason.REGISTRATION_REQUIRED,
    }
)


@dataclass(frozen=True, slots=True)
class CtaTexts:
    """Everything a walled reader reads. ``heading`` is for registered-only articles,
    ``meter_heading`` for a used-up meter; the rest is shared."""

    lang: str
    heading: str
    meter_heading: str
    body: str
    benefits: tuple[str, ...]
    register_label: str
    sign_in_prompt: str
    sign_in_label: str
    policy_heading: str
    policy_body: str
    policy_label: str
    verify_heading: str
    verify_body: str
    verify_label: str


def _builtin(lang: str) -> CtaTexts:
    """The [wall] table of i18n/locales/<lang>.toml: the wording is data."""
    data = dict(table(lang, "wall"))
    benefits = data.pop("benefits")
    if not isinstance(benefits, list):
        raise TypeError(f"locales/{lang}.toml: wall.benefits must be a list")
    return CtaTexts(
        lang=lang, benefits=tuple(str(b) for b in benefits), **{k: str(v) for k, v in data.items()}
    )


BUILTIN_CTA_TEXTS: Mapping[str, CtaTexts] = MappingProxyType(
    {lang: _builtin(lang) for lang in LANGUAGES}
)
_EN = BUILTIN_CTA_TEXTS["en"]


def cta_texts(lang: str) -> CtaTexts:
    """The built-in texts for ``lang`` (``fr-CA`` → ``fr``), English when unknown."""
    base = lang.strip().lower().replace("_", "-").split("-", 1)[0]
    return BUILTIN_CTA_TEXTS.get(base, _EN)


def _href(url: str) -> str:
    """An escaped href; refuses ``javascript:`` and other schemes that run or embed."""
    stripped = url.strip()
    lowered = stripped.lower()
    if not (stripped.startswith("/") or lowered.startswith(("https://", "http://"))):
        raise ValueError(f"a CTA link must be a path or an http(s) URL, got {url!r}")
    return _e(stripped)


def render_cta(
    texts: CtaTexts,
    *,
    register_url: str,
    login_url: str,
    reason: AccessReason,
    policy_url: str | None = None,
    verify_url: str | None = None,
) -> str:
    """The ``<aside id="consentgate-cta">`` put where the article is cut.

    ``register_url`` and ``login_url`` already carry ``?next=``. For
    ``POLICY_ACCEPTANCE_NEEDED`` the aside asks to accept the new policy instead and
    links to ``policy_url`` (required then); for ``VERIFICATION_NEEDED`` it asks to
    verify the address and links to ``verify_url`` (required then). A reason that
    grants the full article has no CTA: asking for one is a bug, hence the ValueError.
    """
    if reason is AccessReason.POLICY_ACCEPTANCE_NEEDED:
        if policy_url is None:
            raise ValueError("policy_url is needed for POLICY_ACCEPTANCE_NEEDED")
        return _policy_cta(texts, policy_url)
    if reason is AccessReason.VERIFICATION_NEEDED:
        if verify_url is None:
            raise ValueError("verify_url is needed for VERIFICATION_NEEDED")
        return _verify_cta(texts, verify_url)
    if reason not in _REGISTER_REASONS:
        raise ValueError(f"{reason.name} grants the full article; there is no CTA for it")
    heading = texts.heading if reason is AccessReason.REGISTRATION_REQUIRED else texts.meter_heading
    benefits = "".join(f'<li class="cg-cta__benefit">{_e(b)}</li>' for b in texts.benefits)
    return (
        f'<aside id="{CTA_ID}" class="cg-cta cg-cta--register" lang="{_e(texts.lang)}"'
        f' data-cg-reason="{reason.value}" aria-labelledby="{CTA_ID}-heading">'
        f'<h2 id="{CTA_ID}-heading" class="cg-cta__heading">{_e(heading)}</h2>'
        f'<p class="cg-cta__body">{_e(texts.body)}</p>'
        f'<ul class="cg-cta__benefits">{benefits}</ul>'
        f'<p class="cg-cta__actions">'
        f'<a class="cg-cta__register" href="{_href(register_url)}">'
        f"{_e(texts.register_label)}</a></p>"
        f'<p class="cg-cta__signin">{_e(texts.sign_in_prompt)} '
        f'<a class="cg-cta__login" href="{_href(login_url)}">{_e(texts.sign_in_label)}</a></p>'
        "</aside>"
    )


def _policy_cta(texts: CtaTexts, policy_url: str) -> str:
    reason = AccessReason.POLICY_ACCEPTANCE_NEEDED.value
    return (
        f'<aside id="{CTA_ID}" class="cg-cta cg-cta--policy" lang="{_e(texts.lang)}"'
        f' data-cg-reason="{reason}" aria-labelledby="{CTA_ID}-heading">'
        f'<h2 id="{CTA_ID}-heading" class="cg-cta__heading">{_e(texts.policy_heading)}</h2>'
        f'<p class="cg-cta__body">{_e(texts.policy_body)}</p>'
        f'<p class="cg-cta__actions">'
        f'<a class="cg-cta__policy" href="{_href(policy_url)}">{_e(texts.policy_label)}</a></p>'
        "</aside>"
    )


def _verify_cta(texts: CtaTexts, verify_url: str) -> str:
    reason = AccessReason.VERIFICATION_NEEDED.value
    return (
        f'<aside id="{CTA_ID}" class="cg-cta cg-cta--verify" lang="{_e(texts.lang)}"'
        f' data-cg-reason="{reason}" aria-labelledby="{CTA_ID}-heading">'
        f'<h2 id="{CTA_ID}-heading" class="cg-cta__heading">{_e(texts.verify_heading)}</h2>'
        f'<p class="cg-cta__body">{_e(texts.verify_body)}</p>'
        f'<p class="cg-cta__actions">'
        f'<a class="cg-cta__verify" href="{_href(verify_url)}">{_e(texts.verify_label)}</a></p>'
        "</aside>"
    )


def render_wall_page(
    texts: CtaTexts,
    *,
    title: str,
    register_url: str,
    login_url: str,
    reason: AccessReason,
    lang: str,
    stylesheet_url: str,
    policy_url: str | None = None,
    verify_url: str | None = None,
) -> str:
    """A standalone page holding only the CTA: sent when the article cannot be cut safely.

    Fail closed: nothing of the app's response goes into it, so it takes no article
    text at all. ``title`` is the page title (e.g. the headline, or the site name).
    """
    cta = render_cta(
        texts,
        register_url=register_url,
        login_url=login_url,
        reason=reason,
        policy_url=policy_url,
        verify_url=verify_url,
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{_href(stylesheet_url)}">'
        f'</head><body class="cg-wall-page"><main class="cg-wall-page__main">{cta}</main>'
        "</body></html>\n"
    )
