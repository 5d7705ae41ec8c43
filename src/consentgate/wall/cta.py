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


_EN = CtaTexts(
    lang="en",
    heading="This article is for registered readers",
    meter_heading="You have reached your free articles for now",
    body=(
        "Keep reading by creating an account. It costs nothing and takes a minute — "
        "and it gives you unlimited access to everything we publish."
    ),
    benefits=(
        "Every article, with no monthly limit",
        "Save articles to read later, on any device",
        "Our newsletters, only if you choose them",
    ),
    register_label="Register — it's free",
    sign_in_prompt="Already have an account?",
    sign_in_label="Sign in",
    policy_heading="Our privacy policy has changed",
    policy_body=(
        "We have updated our privacy policy. Please review and accept it to continue reading."
    ),
    policy_label="Review the privacy policy",
)

_FR = CtaTexts(
    lang="fr",
    heading="Cet article est réservé aux lecteurs inscrits",
    meter_heading="Vous avez lu vos articles gratuits pour le moment",
    body=(
        "Poursuivez votre lecture en créant un compte. C'est gratuit et rapide — "
        "et vous accédez sans limite à tout ce que nous publions."
    ),
    benefits=(
        "Tous les articles, sans limite mensuelle",
        "Enregistrez des articles pour plus tard, sur tous vos appareils",
        "Nos newsletters, seulement si vous les choisissez",
    ),
    register_label="Je m'inscris gratuitement",
    sign_in_prompt="Vous avez déjà un compte ?",
    sign_in_label="Se connecter",
    policy_heading="Notre politique de confidentialité a changé",
    policy_body=(
        "Nous avons mis à jour notre politique de confidentialité. Merci de la consulter "
        "et de l'accepter pour poursuivre votre lecture."
    ),
    policy_label="Consulter la politique de confidentialité",
)

_DE = CtaTexts(
    lang="de",
    heading="Dieser Artikel ist registrierten Leserinnen und Lesern vorbehalten",
    meter_heading="Sie haben Ihre kostenlosen Artikel vorerst gelesen",
    body=(
        "Lesen Sie weiter, indem Sie ein Konto anlegen. Das ist kostenlos und dauert "
        "eine Minute — und Sie erhalten unbegrenzten Zugang zu allem, was wir veröffentlichen."
    ),
    benefits=(
        "Alle Artikel, ohne monatliche Grenze",
        "Artikel für später speichern, auf jedem Gerät",
        "Unsere Newsletter, nur wenn Sie sie wählen",
    ),
    register_label="Kostenlos registrieren",
    sign_in_prompt="Sie haben bereits ein Konto?",
    sign_in_label="Anmelden",
    policy_heading="Unsere Datenschutzerklärung hat sich geändert",
    policy_body=(
        "Wir haben unsere Datenschutzerklärung aktualisiert. Bitte lesen und akzeptieren "
        "Sie sie, um weiterzulesen."
    ),
    policy_label="Datenschutzerklärung ansehen",
)

_ES = CtaTexts(
    lang="es",
    heading="Este artículo es para lectores registrados",
    meter_heading="Ha leído sus artículos gratuitos por ahora",
    body=(
        "Siga leyendo creando una cuenta. Es gratis y lleva un minuto, "
        "y le da acceso ilimitado a todo lo que publicamos."
    ),
    benefits=(
        "Todos los artículos, sin límite mensual",
        "Guarde artículos para leerlos después, en cualquier dispositivo",
        "Nuestros boletines, solo si usted los elige",
    ),
    register_label="Regístrese gratis",
    sign_in_prompt="¿Ya tiene una cuenta?",
    sign_in_label="Iniciar sesión",
    policy_heading="Nuestra política de privacidad ha cambiado",
    policy_body=(
        "Hemos actualizado nuestra política de privacidad. Revísela y acéptela para seguir leyendo."
    ),
    policy_label="Revisar la política de privacidad",
)

_TR = CtaTexts(
    lang="tr",
    heading="Bu makale kayıtlı okurlarımıza özeldir",
    meter_heading="Şimdilik ücretsiz makale hakkınızı kullandınız",
    body=(
        "Ücretsiz bir hesap oluşturarak okumaya devam edin. Bir dakikanızı alır "
        "ve yayımladığımız her şeye sınırsız erişim sağlar."
    ),
    benefits=(
        "Aylık sınır olmadan tüm makaleler",
        "Makaleleri her cihazda daha sonra okumak üzere kaydedin",
        "Yalnızca seçerseniz bültenlerimiz",
    ),
    register_label="Ücretsiz kaydolun",
    sign_in_prompt="Zaten hesabınız var mı?",
    sign_in_label="Giriş yapın",
    policy_heading="Gizlilik politikamız değişti",
    policy_body=(
        "Gizlilik politikamızı güncelledik. Okumaya devam etmek için lütfen inceleyip kabul edin."
    ),
    policy_label="Gizlilik politikasını inceleyin",
)

BUILTIN_CTA_TEXTS: Mapping[str, CtaTexts] = MappingProxyType(
    {t.lang: t for t in (_EN, _FR, _DE, _ES, _TR)}
)


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
) -> str:
    """The ``<aside id="consentgate-cta">`` put where the article is cut.

    ``register_url`` and ``login_url`` already carry ``?next=``. For
    ``POLICY_ACCEPTANCE_NEEDED`` the aside asks to accept the new policy instead and
    links to ``policy_url`` (required then). A reason that grants the full article has
    no CTA: asking for one is a bug, hence the ValueError.
    """
    if reason is AccessReason.POLICY_ACCEPTANCE_NEEDED:
        if policy_url is None:
            raise ValueError("policy_url is needed for POLICY_ACCEPTANCE_NEEDED")
        return _policy_cta(texts, policy_url)
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
