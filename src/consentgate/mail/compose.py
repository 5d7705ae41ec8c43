"""A message's two parts from a few texts: every mail we send has a plain-text part and
an HTML part with the same words, in the reader's language.

The HTML is deliberately plain: one column, inline styles (most mail clients drop
``<style>`` and ``<link>``), no images (blocked by default, and a tracking pixel is not
ours to send). Everything given is text and is escaped here; callers never write markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from consentgate.storage.records import OutgoingMail

__all__ = ["RESERVED_HEADERS", "check_header", "compose_mail"]

_KIND = re.compile(r"[a-z_]{1,40}")
# RFC 5322 field names: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
# Any line break (or NUL) in a header value would let a value start a header of its own.
_BREAKS = re.compile(r"[\r\n\x00\u2028\u2029\x85\x0b\x0c]")
#: Headers the message builder writes itself; extra headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "auto-submitted",
        "sender",
        "reply-to",
        "return-path",
    }
)


def check_header(name: str, value: str) -> None:
    """Refuse a header that could smuggle another one in (CR/LF) or is no header name."""
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a header name: {name!r}")
    if _BREAKS.search(value):
        raise ValueError(f"header {name} must not contain a line break")


def _check_recipient(recipient: str) -> None:
    if _BREAKS.search(recipient):
        raise ValueError("the recipient must not contain a line break")
    local, at, domain = recipient.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in recipient):
        raise ValueError(f"not an e-mail address: {recipient!r}")


def _check_url(url: str) -> None:
    if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
        raise ValueError(f"the action URL must be an http(s) URL without spaces: {url!r}")


def compose_mail(
    *,
    recipient: str,
    kind: str,
    language: str,
    site_name: str,
    subject: str,
    paragraphs: Sequence[str],
    action_label: str | None = None,
    action_url: str | None = None,
    footer: str = "",
    headers: Sequence[tuple[str, str]] = (),
) -> OutgoingMail:
    """A message with a plain-text and an escaped, inline-styled HTML part.

    The action (a link to confirm, sign in, reset) is a button in HTML and the bare URL
    on a line of its own in text, where every client makes it clickable and a reader can
    copy it whole. CR/LF in the recipient, the subject or a header raises ValueError.
    """
    if not _KIND.fullmatch(kind):
        raise ValueError(f"kind must match [a-z_]{{1,40}}, got {kind!r}")
    _check_recipient(recipient)
    check_header("Subject", subject)
    if not subject.strip():
        raise ValueError("a mail needs a subject")
    if (action_label is None) != (action_url is None):
        raise ValueError("action_label and action_url go together")
    if action_url is not None:
        _check_url(action_url)
    extra: list[tuple[str, str]] = []
    for name, value in headers:
        check_header(name, value)
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name} is written by the mailer itself")
        extra.append((name, value))
    return OutgoingMail(
        recipient=recipient,
        subject=subject,
        text=_text(site_name, paragraphs, action_label, action_url, footer),
        html=_html(language, site_name, subject, paragraphs, action_label, action_url, footer),
        kind=kind,
        language=language,
        headers=tuple(extra),
    )


def _text(
    site_name: str,
    paragraphs: Sequence[str],
    action_label: str | None,
    action_url: str | None,
    footer: str,
) -> str:
    blocks = [p.strip() for p in paragraphs if p.strip()]
    if action_label is not None and action_url is not None:
        blocks.append(f"{action_label}:\n{action_url}")
    # "-- " (with the space) is the signature separator clients fold away.
    signature = "\n".join(part for part in (footer.strip(), site_name) if part)
    blocks.append(f"-- \n{signature}")
    return "\n\n".join(blocks) + "\n"


_BODY = "margin:0;padding:0;background:#f4f4f4;"
_BOX = (
    "max-width:560px;margin:0 auto;padding:24px;background:#ffffff;color:#1a1a1a;"
    "font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;"
)
_P = "margin:0 0 16px 0;"
_BUTTON = (
    "display:inline-block;padding:12px 20px;background:#1a4fa0;color:#ffffff;"
    "text-decoration:none;border-radius:4px;font-weight:bold;"
)
_URL = "margin:0 0 16px 0;font-size:13px;color:#555555;word-break:break-all;"
_URL_LINK = "color:#555555;"
_FOOTER = (
    "margin:24px 0 0 0;padding-top:12px;border-top:1px solid #dddddd;font-size:13px;color:#555555;"
)


def _paragraph(text: str, style: str = _P) -> str:
    # A line break the writer put in a paragraph stays one in HTML.
    return f'<p style="{style}">' + "<br>".join(escape(line) for line in text.splitlines()) + "</p>"


def _html(
    language: str,
    site_name: str,
    subject: str,
    paragraphs: Sequence[str],
    action_label: str | None,
    action_url: str | None,
    footer: str,
) -> str:
    parts = [_paragraph(p.strip()) for p in paragraphs if p.strip()]
    if action_label is not None and action_url is not None:
        href = escape(action_url, quote=True)
        parts.append(
            f'<p style="{_P}"><a href="{href}" style="{_BUTTON}">{escape(action_label)}</a></p>'
        )
        # The address written out too: some clients show links as text only.
        parts.append(
            f'<p style="{_URL}"><a href="{href}" style="{_URL_LINK}">{escape(action_url)}</a></p>'
        )
    closing = "\n".join(part for part in (footer.strip(), site_name) if part)
    parts.append(_paragraph(closing, _FOOTER))
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{escape(language, quote=True)}">\n'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(subject)}</title></head>\n"
        f'<body style="{_BODY}">\n<div style="{_BOX}">\n{body}\n</div>\n</body>\n</html>\n'
    )
