"""The words readers see: built-in texts in five languages, overrides, negotiation.

Every text a reader can be shown has a key in :data:`TEXT_KEYS`. Operators may replace
any of them per language (``[texts.fr]`` in ``consentgate.toml``); :func:`resolve_texts`
merges the built-in wording with those overrides. :func:`banner_text_sha256` fingerprints
exactly what the banner showed, so the consent ledger can prove it later (GDPR Art. 7(1)).

Placeholders: ``policy_version`` contains ``{version}``; it is substituted with
``str.replace`` (never ``str.format``), so operator texts cannot reach Python formatting.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

from consentgate.config import Category, RegionMode, default_categories

__all__ = [
    "BUILTIN_TEXTS",
    "DEFAULT_CATEGORY_IDS",
    "TEXT_KEYS",
    "ResolvedTexts",
    "banner_intro",
    "banner_text_sha256",
    "category_text",
    "intro_key",
    "negotiate_language",
    "resolve_texts",
]

_NB = "\u00a0"  # French puts a no-break space before ; : ! ? and inside « »

_EN_DEFAULTS = {c.id: c for c in default_categories()}
DEFAULT_CATEGORY_IDS: tuple[str, ...] = tuple(_EN_DEFAULTS)

_EN: dict[str, str] = {
    "title": "Your choice about cookies",
    "intro": (
        "We would like to use cookies to {purposes}. Only strictly necessary cookies are used "
        "unless you agree to more. Refusing is perfectly fine. You can change your mind at any "
        "time via “Cookie settings” at the bottom of every page."
    ),
    "intro_opt_out": (
        "We use cookies to {purposes}. You can refuse the optional ones here, now or at any time "
        "via “Cookie settings” at the bottom of every page."
    ),
    "intro_notice": (
        "We use cookies to {purposes}. You can review and change these uses at any time via "
        "“Cookie settings” at the bottom of every page."
    ),
    # The intro names the purposes of the configured categories: "a, b and c".
    "list_and": " and ",
    "purpose_fallback": "offer the optional features listed below",
    "accept_all": "Accept all",
    "reject_all": "Reject all",
    "customise": "Customise",
    "save_choices": "Save my choices",
    "categories_legend": "Choose what you allow",
    "always_on": "Always on",
    "policy_link": "Privacy policy",
    "policy_version": "version {version}",
    "settings_link": "Cookie settings",
    "settings_title": "Cookie settings",
    "settings_intro": (
        "Here you can see what you have allowed and change it. A new choice applies straight away; "
        "withdrawing your consent turns every optional category off."
    ),
    "state_heading": "Your current choice",
    "state_on": "Allowed",
    "state_off": "Not allowed",
    "state_undecided": (
        "You have not made a choice yet, so only strictly necessary cookies are in use."
    ),
    "decided_at": "Choice recorded on",
    "consent_id": "Reference",
    "withdraw": "Withdraw consent",
    "withdraw_note": "This turns every optional category off straight away.",
    "receipt_link": "View your consent receipt",
    "history_heading": "Earlier choices",
    "history_when": "Date",
    "history_action": "Action",
    "history_categories": "Allowed",
    "history_grant": "Gave consent",
    "history_reject": "Refused",
    "history_update": "Changed the choice",
    "history_withdraw": "Withdrew consent",
    "back": "Back to the site",
    "saved": "Your choices have been saved.",
    "gpc_note": (
        "Your browser sent a Global Privacy Control signal; advertising stays off unless you turn "
        "it on here."
    ),
    "error_csrf_title": "Request not accepted",
    "error_csrf": (
        "This form has expired or did not come from this site, so nothing was changed. Please go "
        "back, reload the page and try again."
    ),
    "error_storage_title": "Choice not recorded",
    "error_storage": (
        "Your choice could not be recorded, so nothing was turned on. Please try again."
    ),
    "error_bad_request_title": "Incomplete request",
    "error_bad_request": (
        "The request was incomplete or could not be understood, so nothing was changed. Please go "
        "back and try again."
    ),
}
for _cat in _EN_DEFAULTS.values():
    _EN[f"category.{_cat.id}.title"] = _cat.title
    _EN[f"category.{_cat.id}.description"] = _cat.description
    _EN[f"category.{_cat.id}.purpose"] = _cat.purpose

_FR: dict[str, str] = {
    "title": "Vos choix en matière de cookies",
    "intro": (
        "Nous aimerions utiliser des cookies pour {purposes}. Seuls les cookies strictement "
        "nécessaires sont utilisés tant que vous n’en acceptez pas davantage. Vous êtes libre de "
        "refuser. Vous pouvez changer d’avis à tout moment grâce au lien "
        f"«{_NB}Paramètres des cookies{_NB}» en bas de chaque page."
    ),
    "intro_opt_out": (
        "Nous utilisons des cookies pour {purposes}. Vous pouvez refuser ceux qui sont facultatifs "
        "ici, "
        f"maintenant ou à tout moment via «{_NB}Paramètres des cookies{_NB}» en bas de "
        "chaque page."
    ),
    "intro_notice": (
        "Nous utilisons des cookies pour {purposes}. Vous pouvez consulter et modifier ces "
        f"usages à tout moment via «{_NB}Paramètres des cookies{_NB}» en bas de chaque page."
    ),
    "list_and": " et ",
    "purpose_fallback": "proposer les fonctions facultatives ci-dessous",
    "category.necessary.purpose": "faire fonctionner le site",
    "category.preferences.purpose": "mémoriser vos préférences",
    "category.analytics.purpose": "mesurer notre audience",
    "category.marketing.purpose": "afficher de la publicité",
    "accept_all": "Tout accepter",
    "reject_all": "Tout refuser",
    "customise": "Personnaliser",
    "save_choices": "Enregistrer mes choix",
    "categories_legend": "Choisissez ce que vous autorisez",
    "always_on": "Toujours actifs",
    "policy_link": "Politique de confidentialité",
    "policy_version": "version {version}",
    "settings_link": "Paramètres des cookies",
    "settings_title": "Paramètres des cookies",
    "settings_intro": (
        "Vous voyez ici ce que vous avez autorisé et pouvez le modifier. Un nouveau choix "
        f"s’applique immédiatement{_NB}; retirer votre consentement désactive toutes les "
        "catégories facultatives."
    ),
    "state_heading": "Votre choix actuel",
    "state_on": "Autorisé",
    "state_off": "Non autorisé",
    "state_undecided": (
        f"Vous n’avez pas encore fait de choix{_NB}: seuls les cookies strictement "
        "nécessaires sont utilisés."
    ),
    "decided_at": "Choix enregistré le",
    "consent_id": "Référence",
    "withdraw": "Retirer mon consentement",
    "withdraw_note": "Toutes les catégories facultatives sont alors désactivées immédiatement.",
    "receipt_link": "Voir votre reçu de consentement",
    "history_heading": "Choix précédents",
    "history_when": "Date",
    "history_action": "Action",
    "history_categories": "Autorisé",
    "history_grant": "Consentement donné",
    "history_reject": "Refus",
    "history_update": "Choix modifié",
    "history_withdraw": "Consentement retiré",
    "back": "Retour au site",
    "saved": "Vos choix ont été enregistrés.",
    "gpc_note": (
        f"Votre navigateur a envoyé un signal Global Privacy Control{_NB}; la publicité "
        "reste désactivée, sauf si vous l’activez ici."
    ),
    "error_csrf_title": "Demande refusée",
    "error_csrf": (
        "Ce formulaire a expiré ou ne provient pas de ce site, rien n’a donc été modifié. Revenez "
        "en arrière, rechargez la page et réessayez."
    ),
    "error_storage_title": "Choix non enregistré",
    "error_storage": (
        "Votre choix n’a pas pu être enregistré, rien n’a donc été activé. Veuillez réessayer."
    ),
    "error_bad_request_title": "Demande incomplète",
    "error_bad_request": (
        "La demande était incomplète ou incompréhensible, rien n’a donc été modifié. Revenez en "
        "arrière et réessayez."
    ),
    "category.necessary.title": "Strictement nécessaires",
    "category.necessary.description": (
        "Assurent le fonctionnement et la sécurité du site et mémorisent vos choix en matière de "
        "cookies. Toujours actifs."
    ),
    "category.preferences.title": "Préférences",
    "category.preferences.description": (
        "Mémorisent des réglages comme votre langue ou la taille de texte choisie."
    ),
    "category.analytics.title": "Mesure d’audience",
    "category.analytics.description": (
        "Comptent les visites et mesurent quels articles sont lus, afin que nous puissions "
        "améliorer le site."
    ),
    "category.marketing.title": "Publicité",
    "category.marketing.description": (
        "Nous permettent, ainsi qu’à nos partenaires publicitaires, d’afficher des annonces "
        "adaptées à vos centres d’intérêt et d’en mesurer l’efficacité."
    ),
}

_DE: dict[str, str] = {
    "title": "Ihre Entscheidung zu Cookies",
    "intro": (
        "Wir möchten Cookies verwenden, um {purposes}. Solange Sie nicht mehr erlauben, setzen wir "
        "nur unbedingt erforderliche Cookies ein. Sie können ohne Weiteres ablehnen. Ihre "
        "Entscheidung können Sie jederzeit über „Cookie-Einstellungen“ unten auf jeder Seite "
        "ändern."
    ),
    "intro_opt_out": (
        "Wir verwenden Cookies, um {purposes}. Die optionalen Cookies können Sie hier ablehnen – "
        "jetzt oder jederzeit über „Cookie-Einstellungen“ unten auf jeder Seite."
    ),
    "intro_notice": (
        "Wir verwenden Cookies, um {purposes}. Über „Cookie-Einstellungen“ unten auf jeder Seite "
        "können Sie diese Verwendungen jederzeit einsehen und ändern."
    ),
    "list_and": " und ",
    "purpose_fallback": "die unten aufgeführten optionalen Funktionen anzubieten",
    "category.necessary.purpose": "die Website funktionsfähig zu halten",
    "category.preferences.purpose": "Ihre Einstellungen zu speichern",
    "category.analytics.purpose": "unsere Reichweite zu messen",
    "category.marketing.purpose": "Werbung anzuzeigen",
    "accept_all": "Alle akzeptieren",
    "reject_all": "Alle ablehnen",
    "customise": "Anpassen",
    "save_choices": "Auswahl speichern",
    "categories_legend": "Wählen Sie, was Sie erlauben",
    "always_on": "Immer aktiv",
    "policy_link": "Datenschutzerklärung",
    "policy_version": "Version {version}",
    "settings_link": "Cookie-Einstellungen",
    "settings_title": "Cookie-Einstellungen",
    "settings_intro": (
        "Hier sehen Sie, was Sie erlaubt haben, und können es ändern. Eine neue Auswahl gilt "
        "sofort; wenn Sie Ihre Einwilligung widerrufen, werden alle optionalen Kategorien "
        "ausgeschaltet."
    ),
    "state_heading": "Ihre aktuelle Auswahl",
    "state_on": "Erlaubt",
    "state_off": "Nicht erlaubt",
    "state_undecided": (
        "Sie haben noch keine Auswahl getroffen, daher werden nur unbedingt erforderliche Cookies "
        "verwendet."
    ),
    "decided_at": "Auswahl gespeichert am",
    "consent_id": "Referenz",
    "withdraw": "Einwilligung widerrufen",
    "withdraw_note": "Damit werden alle optionalen Kategorien sofort ausgeschaltet.",
    "receipt_link": "Ihren Einwilligungsnachweis ansehen",
    "history_heading": "Frühere Entscheidungen",
    "history_when": "Datum",
    "history_action": "Aktion",
    "history_categories": "Erlaubt",
    "history_grant": "Einwilligung erteilt",
    "history_reject": "Abgelehnt",
    "history_update": "Auswahl geändert",
    "history_withdraw": "Einwilligung widerrufen",
    "back": "Zurück zur Website",
    "saved": "Ihre Auswahl wurde gespeichert.",
    "gpc_note": (
        "Ihr Browser hat ein Global-Privacy-Control-Signal gesendet; Werbung bleibt ausgeschaltet, "
        "solange Sie sie hier nicht einschalten."
    ),
    "error_csrf_title": "Anfrage nicht angenommen",
    "error_csrf": (
        "Dieses Formular ist abgelaufen oder stammt nicht von dieser Website, daher wurde nichts "
        "geändert. Bitte gehen Sie zurück, laden Sie die Seite neu und versuchen Sie es erneut."
    ),
    "error_storage_title": "Auswahl nicht gespeichert",
    "error_storage": (
        "Ihre Auswahl konnte nicht gespeichert werden, daher wurde nichts eingeschaltet. Bitte "
        "versuchen Sie es erneut."
    ),
    "error_bad_request_title": "Unvollständige Anfrage",
    "error_bad_request": (
        "Die Anfrage war unvollständig oder nicht verständlich, daher wurde nichts geändert. Bitte "
        "gehen Sie zurück und versuchen Sie es erneut."
    ),
    "category.necessary.title": "Unbedingt erforderlich",
    "category.necessary.description": (
        "Sorgen dafür, dass die Website funktioniert und sicher ist, und speichern Ihre "
        "Cookie-Auswahl. Immer aktiv."
    ),
    "category.preferences.title": "Einstellungen",
    "category.preferences.description": (
        "Speichern Einstellungen wie Ihre Sprache oder die von Ihnen gewählte Schriftgröße."
    ),
    "category.analytics.title": "Reichweitenmessung",
    "category.analytics.description": (
        "Zählen Besuche und messen, welche Artikel gelesen werden, damit wir die Website "
        "verbessern können."
    ),
    "category.marketing.title": "Werbung",
    "category.marketing.description": (
        "Ermöglichen uns und unseren Werbepartnern, Anzeigen passend zu Ihren Interessen zu zeigen "
        "und ihre Wirkung zu messen."
    ),
}

_ES: dict[str, str] = {
    "title": "Tu elección sobre las cookies",
    "intro": (
        "Nos gustaría usar cookies para {purposes}. Mientras no aceptes nada más, solo usamos las "
        "cookies estrictamente necesarias. Puedes rechazarlas sin ningún problema. Puedes cambiar "
        "de opinión en cualquier momento desde «Configuración de cookies», al pie de cada página."
    ),
    "intro_opt_out": (
        "Usamos cookies para {purposes}. Puedes rechazar las opcionales aquí, ahora o en cualquier "
        "momento desde «Configuración de cookies», al pie de cada página."
    ),
    "intro_notice": (
        "Usamos cookies para {purposes}. Puedes revisar y cambiar estos usos en cualquier momento "
        "desde «Configuración de cookies», al pie de cada página."
    ),
    "list_and": " y ",
    "purpose_fallback": "ofrecer las funciones opcionales que se indican abajo",
    "category.necessary.purpose": "hacer funcionar el sitio",
    "category.preferences.purpose": "recordar tus preferencias",
    "category.analytics.purpose": "medir nuestra audiencia",
    "category.marketing.purpose": "mostrar publicidad",
    "accept_all": "Aceptar todo",
    "reject_all": "Rechazar todo",
    "customise": "Personalizar",
    "save_choices": "Guardar mi elección",
    "categories_legend": "Elige lo que permites",
    "always_on": "Siempre activas",
    "policy_link": "Política de privacidad",
    "policy_version": "versión {version}",
    "settings_link": "Configuración de cookies",
    "settings_title": "Configuración de cookies",
    "settings_intro": (
        "Aquí puedes ver lo que has permitido y cambiarlo. Una nueva elección se aplica de "
        "inmediato; si retiras tu consentimiento, se desactivan todas las categorías opcionales."
    ),
    "state_heading": "Tu elección actual",
    "state_on": "Permitido",
    "state_off": "No permitido",
    "state_undecided": (
        "Todavía no has elegido, así que solo se usan las cookies estrictamente necesarias."
    ),
    "decided_at": "Elección registrada el",
    "consent_id": "Referencia",
    "withdraw": "Retirar el consentimiento",
    "withdraw_note": "Esto desactiva de inmediato todas las categorías opcionales.",
    "receipt_link": "Ver tu comprobante de consentimiento",
    "history_heading": "Elecciones anteriores",
    "history_when": "Fecha",
    "history_action": "Acción",
    "history_categories": "Permitido",
    "history_grant": "Consentimiento dado",
    "history_reject": "Rechazo",
    "history_update": "Elección modificada",
    "history_withdraw": "Consentimiento retirado",
    "back": "Volver al sitio",
    "saved": "Tu elección se ha guardado.",
    "gpc_note": (
        "Tu navegador ha enviado una señal Global Privacy Control; la publicidad seguirá "
        "desactivada salvo que la actives aquí."
    ),
    "error_csrf_title": "Solicitud no aceptada",
    "error_csrf": (
        "Este formulario ha caducado o no procede de este sitio, así que no se ha cambiado nada. "
        "Vuelve atrás, recarga la página e inténtalo de nuevo."
    ),
    "error_storage_title": "Elección no registrada",
    "error_storage": (
        "No se ha podido registrar tu elección, así que no se ha activado nada. Inténtalo de nuevo."
    ),
    "error_bad_request_title": "Solicitud incompleta",
    "error_bad_request": (
        "La solicitud estaba incompleta o no se ha podido entender, así que no se ha cambiado "
        "nada. Vuelve atrás e inténtalo de nuevo."
    ),
    "category.necessary.title": "Estrictamente necesarias",
    "category.necessary.description": (
        "Hacen que el sitio funcione de forma segura y recuerdan tu elección sobre las cookies. "
        "Siempre activas."
    ),
    "category.preferences.title": "Preferencias",
    "category.preferences.description": (
        "Recuerdan ajustes como tu idioma o el tamaño de letra que has elegido."
    ),
    "category.analytics.title": "Medición de audiencia",
    "category.analytics.description": (
        "Cuentan las visitas y miden qué artículos se leen, para que podamos mejorar el sitio."
    ),
    "category.marketing.title": "Publicidad",
    "category.marketing.description": (
        "Nos permiten a nosotros y a nuestros socios publicitarios mostrarte anuncios según tus "
        "intereses y medir su eficacia."
    ),
}

_TR: dict[str, str] = {
    "title": "Çerez tercihiniz",
    "intro": (
        "{Purposes} için çerez kullanmak istiyoruz. Siz daha fazlasına izin vermedikçe yalnızca "
        "kesinlikle gerekli çerezler kullanılır. Reddetmeniz hiçbir sorun yaratmaz. Fikrinizi "
        "istediğiniz zaman her sayfanın altındaki “Çerez ayarları” bağlantısından "
        "değiştirebilirsiniz."
    ),
    "intro_opt_out": (
        "{Purposes} için çerez kullanıyoruz. İsteğe bağlı çerezleri burada, şimdi ya da "
        "istediğiniz zaman her sayfanın altındaki “Çerez ayarları” bağlantısından "
        "reddedebilirsiniz."
    ),
    "intro_notice": (
        "{Purposes} için çerez kullanıyoruz. Bu kullanımları istediğiniz zaman her sayfanın "
        "altındaki “Çerez ayarları” bağlantısından inceleyip değiştirebilirsiniz."
    ),
    "list_and": " ve ",
    "purpose_fallback": "aşağıda listelenen isteğe bağlı özellikleri sunmak",
    "category.necessary.purpose": "sitenin çalışmasını sağlamak",
    "category.preferences.purpose": "tercihlerinizi hatırlamak",
    "category.analytics.purpose": "okur kitlemizi ölçmek",
    "category.marketing.purpose": "reklam göstermek",
    "accept_all": "Tümünü kabul et",
    "reject_all": "Tümünü reddet",
    "customise": "Özelleştir",
    "save_choices": "Seçimlerimi kaydet",
    "categories_legend": "Neye izin verdiğinizi seçin",
    "always_on": "Her zaman açık",
    "policy_link": "Gizlilik politikası",
    "policy_version": "sürüm {version}",
    "settings_link": "Çerez ayarları",
    "settings_title": "Çerez ayarları",
    "settings_intro": (
        "Burada neye izin verdiğinizi görebilir ve değiştirebilirsiniz. Yeni bir seçim hemen "
        "geçerli olur; onayınızı geri çekerseniz isteğe bağlı tüm kategoriler kapanır."
    ),
    "state_heading": "Mevcut seçiminiz",
    "state_on": "İzin verildi",
    "state_off": "İzin verilmedi",
    "state_undecided": (
        "Henüz bir seçim yapmadınız; bu nedenle yalnızca kesinlikle gerekli çerezler kullanılıyor."
    ),
    "decided_at": "Seçimin kaydedildiği tarih",
    "consent_id": "Referans",
    "withdraw": "Onayımı geri çek",
    "withdraw_note": "Bu işlem isteğe bağlı tüm kategorileri hemen kapatır.",
    "receipt_link": "Onay makbuzunuzu görüntüleyin",
    "history_heading": "Önceki seçimler",
    "history_when": "Tarih",
    "history_action": "İşlem",
    "history_categories": "İzin verilenler",
    "history_grant": "Onay verildi",
    "history_reject": "Reddedildi",
    "history_update": "Seçim değiştirildi",
    "history_withdraw": "Onay geri çekildi",
    "back": "Siteye dön",
    "saved": "Seçimleriniz kaydedildi.",
    "gpc_note": (
        "Tarayıcınız bir Global Privacy Control sinyali gönderdi; burada siz açmadıkça reklam "
        "kapalı kalır."
    ),
    "error_csrf_title": "İstek kabul edilmedi",
    "error_csrf": (
        "Bu formun süresi dolmuş ya da form bu siteden gönderilmemiş; bu yüzden hiçbir şey "
        "değiştirilmedi. Lütfen geri dönün, sayfayı yenileyin ve tekrar deneyin."
    ),
    "error_storage_title": "Seçim kaydedilemedi",
    "error_storage": (
        "Seçiminiz kaydedilemedi; bu yüzden hiçbir şey açılmadı. Lütfen tekrar deneyin."
    ),
    "error_bad_request_title": "Eksik istek",
    "error_bad_request": (
        "İstek eksikti ya da anlaşılamadı; bu yüzden hiçbir şey değiştirilmedi. Lütfen geri dönüp "
        "tekrar deneyin."
    ),
    "category.necessary.title": "Kesinlikle gerekli",
    "category.necessary.description": (
        "Sitenin çalışmasını ve güvenliğini sağlar, çerez seçimlerinizi hatırlar. Her zaman açık."
    ),
    "category.preferences.title": "Tercihler",
    "category.preferences.description": (
        "Diliniz veya seçtiğiniz yazı boyutu gibi ayarları hatırlar."
    ),
    "category.analytics.title": "Okur ölçümü",
    "category.analytics.description": (
        "Siteyi geliştirebilmemiz için ziyaretleri sayar ve hangi haberlerin okunduğunu ölçer."
    ),
    "category.marketing.title": "Reklam",
    "category.marketing.description": (
        "Bizim ve reklam ortaklarımızın ilgi alanlarınıza göre reklam göstermesini ve bu "
        "reklamların etkisini ölçmesini sağlar."
    ),
}

BUILTIN_TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        lang: MappingProxyType(table)
        for lang, table in (("en", _EN), ("fr", _FR), ("de", _DE), ("es", _ES), ("tr", _TR))
    }
)

TEXT_KEYS: frozenset[str] = frozenset(_EN)

_FALLBACK_LANGUAGE = "en"


# ---------------------------------------------------------------------------------
# Resolution


class ResolvedTexts(Mapping[str, str]):
    """Built-in texts for one language with the operator's overrides applied.

    Immutable and hashable by identity; :attr:`overridden` names the keys the operator
    replaced (used by :func:`category_text`).
    """

    __slots__ = ("_data", "lang", "overridden")

    def __init__(self, lang: str, data: Mapping[str, str], overridden: frozenset[str]) -> None:
        self.lang = lang
        self._data: Mapping[str, str] = MappingProxyType(dict(data))
        self.overridden = overridden

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ResolvedTexts(lang={self.lang!r}, overridden={sorted(self.overridden)!r})"


#: ``category.<id>.title`` / ``.description`` of any category: the site's own ones too.
_CATEGORY_KEY = re.compile(r"category\.[a-z][a-z0-9_-]*\.(?:title|description|purpose)")


@lru_cache(maxsize=256)
def _resolve(lang: str, overrides: tuple[tuple[str, str], ...]) -> ResolvedTexts:
    base = dict(BUILTIN_TEXTS[_FALLBACK_LANGUAGE])
    base.update(BUILTIN_TEXTS.get(lang, {}))
    applied = {
        key: text for key, text in overrides if key in TEXT_KEYS or _CATEGORY_KEY.fullmatch(key)
    }
    base.update(applied)
    return ResolvedTexts(lang, base, frozenset(applied))


def resolve_texts(lang: str, overrides: Mapping[str, Mapping[str, str]]) -> Mapping[str, str]:
    """Texts for ``lang``: built-in wording, then the operator's ``[texts.<lang>]``.

    Unknown languages fall back to English; unknown override keys are ignored (config
    validation already rejects them). Results are cached per (lang, overrides) content,
    so calling this on every request is cheap.
    """
    lang_overrides = overrides.get(lang, {})
    frozen = tuple(sorted((str(k), str(v)) for k, v in lang_overrides.items()))
    return _resolve(lang, frozen)


def intro_key(mode: RegionMode) -> str:
    """The text key of the banner's intro paragraph for a region mode."""
    if mode == "opt-out":
        return "intro_opt_out"
    if mode == "notice":
        return "intro_notice"
    return "intro"


def banner_intro(texts: Mapping[str, str], categories: Sequence[Category], mode: RegionMode) -> str:
    """The banner's intro for ``mode``, naming the purposes of the configured categories.

    An intro holds ``{purposes}`` (``{Purposes}`` at the start of a sentence): the
    purposes of the optional categories, in display order, joined as the language joins
    a list ("a, b and c"); a notice names the strictly necessary ones too, since it asks
    nothing. A site without advertising is never told it shows advertising. A category
    without a purpose is not named; when none is left, a neutral phrase stands in.
    """
    template = texts.get(intro_key(mode), "")
    named = [
        _category_field(texts, c, "purpose")
        for c in categories
        if mode == "notice" or not c.required
    ]
    purposes = [p for p in named if p] or [texts.get("purpose_fallback", "")]
    joined = purposes[0]
    if len(purposes) > 1:
        joined = ", ".join(purposes[:-1]) + texts.get("list_and", " and ") + purposes[-1]
    capitalised = joined[:1].upper() + joined[1:]
    return template.replace("{purposes}", joined).replace("{Purposes}", capitalised)


def _is_overridden(texts: Mapping[str, str], key: str) -> bool:
    if isinstance(texts, ResolvedTexts):
        return key in texts.overridden
    value = texts.get(key)
    if value is None:
        return False
    return all(table.get(key) != value for table in BUILTIN_TEXTS.values())


def category_text(texts: Mapping[str, str], category: Category) -> tuple[str, str]:
    """The (title, description) to show for ``category`` in the reader's language.

    The translated text key ``category.<id>.title`` / ``.description`` is used when the
    operator overrode it, or when the category is one of the defaults and its configured
    wording is still the English default. Otherwise (operators' own categories, or
    defaults the operator re-worded in the category table) the configured wording wins.
    Title and description are decided independently.
    """
    return _category_field(texts, category, "title"), _category_field(
        texts, category, "description"
    )


def _category_field(texts: Mapping[str, str], category: Category, field: str) -> str:
    """One text of a category (see :func:`category_text`): title, description or purpose."""
    configured: str = getattr(category, field)
    key = f"category.{category.id}.{field}"
    default = _EN_DEFAULTS.get(category.id)
    use_key = key in texts and (
        _is_overridden(texts, key)
        or (default is not None and configured == getattr(default, field))
    )
    return texts[key] if use_key else configured


def banner_text_sha256(
    texts: Mapping[str, str],
    categories: Sequence[Category],
    policy_version: str,
    *,
    mode: RegionMode = "opt-in",
    gpc: bool = False,
) -> str:
    """SHA-256 (hex) of exactly the wording the banner shows, for the consent ledger.

    The serialisation is canonical JSON (sorted keys, no whitespace, UTF-8) of: title,
    the intro for ``mode``, the GPC note if it was shown, every button and label, each
    category's id/title/description/required flag in display order, and the policy
    version. Deterministic; any change to a shown text changes the digest.
    """

    def text(key: str) -> str:
        return texts.get(key, "")

    shown = {
        "format": "consentgate-banner-1",
        "title": text("title"),
        "intro": banner_intro(texts, categories, mode),
        "gpc_note": text("gpc_note") if gpc else None,
        "buttons": [
            text("reject_all"),
            text("accept_all"),
            text("customise"),
            text("save_choices"),
        ],
        "labels": [text("categories_legend"), text("always_on"), text("policy_link")],
        "policy_version_label": text("policy_version").replace("{version}", policy_version),
        "categories": [[c.id, *category_text(texts, c), c.required] for c in categories],
        "policy_version": policy_version,
    }
    blob = json.dumps(shown, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------
# Accept-Language negotiation (RFC 9110 §12.5.4, "lookup"-style on primary subtags)

_LANGUAGE_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")
_MAX_HEADER = 4096
_MAX_RANGES = 64


def _parse_accept_language(header: str) -> list[tuple[str, float, int]]:
    """(lower-cased range, q, position) for every well-formed element; others skipped."""
    ranges: list[tuple[str, float, int]] = []
    for position, element in enumerate(header[:_MAX_HEADER].split(",")[:_MAX_RANGES]):
        parts = [p.strip() for p in element.split(";")]
        tag = parts[0]
        if not tag or not _LANGUAGE_RANGE.match(tag):
            continue
        q = 1.0
        valid = True
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q":
                continue  # unknown parameters are ignored
            value = value.strip()
            if not _QVALUE.match(value):
                valid = False
                break
            q = float(value)
        if valid:
            ranges.append((tag.lower(), q, position))
    return ranges


def negotiate_language(accept_language: str | None, available: Sequence[str], default: str) -> str:
    """Pick the best of ``available`` for an ``Accept-Language`` header; never raises.

    Higher q wins; ties keep header order. A range matches an available tag exactly or
    by primary subtag (``fr-CA`` → ``fr``, ``pt`` → ``pt-BR``). ``*`` matches any
    available language the header does not exclude. ``q=0`` excludes. Malformed
    elements are skipped; if nothing matches, ``default`` is returned.
    """
    if not accept_language or not available:
        return default
    try:
        ranges = _parse_accept_language(accept_language)
    except Exception:  # defensive: a header must never break a page
        return default
    lowered = [(a, a.lower()) for a in available]

    def primary(tag: str) -> str:
        return tag.split("-", 1)[0]

    excluded: set[str] = set()
    for tag, q, _ in ranges:
        if q == 0 and tag != "*":
            excluded.update(
                low for _, low in lowered if low == tag or ("-" not in tag and primary(low) == tag)
            )
    for tag, q, _ in sorted(ranges, key=lambda r: (-r[1], r[2])):
        if q == 0:
            continue
        if tag == "*":
            for original, low in lowered:
                if low not in excluded:
                    return original
            continue
        for original, low in lowered:  # exact match first
            if low == tag and low not in excluded:
                return original
        for original, low in lowered:  # then same primary language
            if primary(low) == primary(tag) and low not in excluded:
                return original
    return default
