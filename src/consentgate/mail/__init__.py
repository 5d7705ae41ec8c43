"""Outgoing e-mail: composing a message (``compose``), turning it into MIME
(``message``), delivering it (``transport``) and the background sender that empties the
durable outbox kept by storage (``sender``).

The outbox is the point: a message is written in the same transaction as what caused it
(a registration, a subscription), so an SMTP outage delays mail but never loses it.
"""

from consentgate.mail.compose import compose_mail

__all__ = ["compose_mail"]
