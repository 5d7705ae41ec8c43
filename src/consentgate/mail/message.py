"""An :class:`OutgoingMail` as the MIME message that goes on the wire.

``multipart/alternative`` with the text part first and the HTML part last (clients show
the last part they can render), both UTF-8. The message id names our sending domain, so
a bounce or a reply can be matched to it; the headers the builder writes cannot be
replaced by a mail's extra headers (compose_mail refuses them, and so does this).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from consentgate.mail.compose import RESERVED_HEADERS, check_header
from consentgate.storage.records import OutgoingMail

__all__ = ["BULK_KINDS", "build_message"]

#: Kinds a reader asked to receive as a series (RFC 3834: not "auto-generated" replies to
#: something they did); every other kind is an account mail that answers an action.
BULK_KINDS = frozenset({"newsletter"})


def build_message(
    mail: OutgoingMail,
    *,
    from_address: str,
    from_name: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    """The message for ``mail``, from ``from_name <from_address>``."""
    message = EmailMessage()
    local, _, domain = from_address.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not an e-mail address: {from_address!r}")
    check_header("From", from_name)
    check_header("To", mail.recipient)
    check_header("Subject", mail.subject)
    message["From"] = Address(display_name=from_name, addr_spec=from_address)
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    # Random, and in our domain (RFC 5322 3.6.4): unique without telling anything.
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{domain}>"
    if mail.kind not in BULK_KINDS:
        # Vacation responders and ticket systems must not answer an account mail.
        message["Auto-Submitted"] = "auto-generated"
    for name, value in mail.headers:
        check_header(name, value)
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name} is written by the mailer itself")
        message[name] = value
    message.set_content(mail.text, charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    # After the parts: setting the content clears every Content-* header.
    message["Content-Language"] = mail.language
    return message
