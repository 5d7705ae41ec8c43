"""The mails the accounts send: verification, "your address was used", sign-in link,
password reset, change of address (a link to the new one, a notice to the old one).

The words are data (the ``[account_mail]`` table of ``i18n/locales/<lang>.toml``), in
the language the reader used when asking; :func:`consentgate.mail.compose.compose_mail`
turns them into the plain-text and HTML parts.
"""

from __future__ import annotations

from consentgate.i18n import locale
from consentgate.mail.compose import compose_mail
from consentgate.storage.records import OutgoingMail

__all__ = ["AccountMails"]


class AccountMails:
    """Builds each account mail; ``link_minutes`` is how long their links work."""

    def __init__(self, site_name: str, link_minutes: int) -> None:
        self.site_name = site_name
        self.link_minutes = link_minutes

    def _compose(
        self,
        recipient: str,
        kind: str,
        lang: str,
        paragraphs: list[str],
        action_url: str | None,
        *,
        expires: bool = True,
    ) -> OutgoingMail:
        texts = locale(lang, "account_mail")
        site = self.site_name or texts["site_fallback"]

        def fill(text: str) -> str:
            return text.replace("{site}", site).replace("{minutes}", str(self.link_minutes))

        body = [fill(p) for p in paragraphs]
        if expires:
            body.append(fill(texts["expires"]))
        return compose_mail(
            recipient=recipient,
            kind=kind,
            language=lang,
            site_name=site,
            subject=fill(texts[f"{kind}_subject"]),
            paragraphs=body,
            action_label=texts[f"{kind}_button"] if action_url else None,
            action_url=action_url,
            footer=fill(texts["footer"]),
        )

    def verify_email(self, recipient: str, lang: str, url: str) -> OutgoingMail:
        texts = locale(lang, "account_mail")
        return self._compose(recipient, "verify_email", lang, [texts["verify_email_body"]], url)

    def address_taken(self, recipient: str, lang: str, sign_in_url: str) -> OutgoingMail:
        """To the owner of an address someone tried to register again."""
        texts = locale(lang, "account_mail")
        paragraphs = [texts["address_taken_body"], texts["address_taken_advice"]]
        return self._compose(
            recipient, "address_taken", lang, paragraphs, sign_in_url, expires=False
        )

    def magic_link(self, recipient: str, lang: str, url: str) -> OutgoingMail:
        texts = locale(lang, "account_mail")
        return self._compose(recipient, "magic_link", lang, [texts["magic_link_body"]], url)

    def password_reset(self, recipient: str, lang: str, url: str) -> OutgoingMail:
        texts = locale(lang, "account_mail")
        return self._compose(recipient, "password_reset", lang, [texts["password_reset_body"]], url)

    def email_change(self, recipient: str, lang: str, url: str) -> OutgoingMail:
        """To the new address: the link that makes the change."""
        texts = locale(lang, "account_mail")
        return self._compose(recipient, "email_change", lang, [texts["email_change_body"]], url)

    def email_change_notice(self, recipient: str, lang: str, new_email: str) -> OutgoingMail:
        """To the old address: a change was asked for (no link: nothing to click)."""
        texts = locale(lang, "account_mail")
        body = texts["email_change_notice_body"].replace("{new_email}", new_email)
        return self._compose(
            recipient,
            "email_change_notice",
            lang,
            [body, texts["email_change_notice_advice"]],
            None,
            expires=False,
        )
