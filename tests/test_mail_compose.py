"""compose_mail: two parts with the same words, escaped HTML, the action URL alone on its
line in text, and no way to smuggle a header in through a value."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from consentgate.mail.compose import compose_mail
from consentgate.storage.records import OutgoingMail

URL = "https://news.example/account/verify?t=abc.def_ghi"


def _mail(**overrides: Any) -> OutgoingMail:
    args: dict[str, Any] = {
        "recipient": "reader@example.org",
        "kind": "verify_email",
        "language": "de",
        "site_name": "Example News",
        "subject": "Bitte bestätigen Sie Ihre Adresse",
        "paragraphs": ["Hallo,", "bitte bestätigen Sie Ihre Adresse."],
        "action_label": "Adresse bestätigen",
        "action_url": URL,
        "footer": "Sie erhalten diese Mail, weil Sie sich registriert haben.",
    }
    args.update(overrides)
    return compose_mail(**args)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.append(dict(attrs)["href"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    return parser


def test_mail_compose_both_parts_carry_the_words() -> None:
    mail = _mail()
    assert mail.recipient == "reader@example.org"
    assert mail.kind == "verify_email" and mail.language == "de"
    for words in ("bitte bestätigen Sie Ihre Adresse.", "Example News", "registriert haben"):
        assert words in mail.text
        assert words in "".join(_parse(mail.html).text)
    assert '<html lang="de">' in mail.html


def test_mail_compose_text_has_the_url_on_its_own_line() -> None:
    lines = _mail().text.splitlines()
    assert URL in lines
    assert "Adresse bestätigen:" in lines


def test_mail_compose_html_button_links_the_url() -> None:
    parsed = _parse(_mail().html)
    assert parsed.links and all(link == URL for link in parsed.links)
    assert "Adresse bestätigen" in parsed.text


def test_mail_compose_html_escapes_every_text() -> None:
    evil = '<script>alert("x")</script> & <b>'
    mail = _mail(
        site_name=evil,
        paragraphs=[evil],
        action_label=evil,
        action_url='https://news.example/?a=1&b="><script>',
        footer=evil,
        subject="Hi <b>there</b>",
    )
    parsed = _parse(mail.html)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    assert evil in "".join(parsed.text)
    assert parsed.links[0] == 'https://news.example/?a=1&b="><script>'
    # The text part is text: nothing is escaped there.
    assert evil in mail.text


def test_mail_compose_without_action_has_no_link() -> None:
    mail = _mail(action_label=None, action_url=None)
    assert _parse(mail.html).links == []
    assert "http" not in mail.text


def test_mail_compose_keeps_extra_headers() -> None:
    headers = (("List-Unsubscribe", "<https://news.example/u/x>"), ("X-Kind", "n"))
    assert _mail(headers=headers).headers == headers


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "Hello\nBcc: victim@example.com"},
        {"subject": "Hello\rX: y"},
        {"recipient": "reader@example.org\r\nBcc: victim@example.com"},
        {"recipient": "reader@example.org\nBcc: victim@example.com"},
        {"headers": [("List-Unsubscribe", "<https://x>\r\nBcc: victim@example.com")]},
        {"headers": [("X-Evil\r\nBcc", "victim@example.com")]},
        {"headers": [("X Bad", "v")]},
        {"headers": [("Bcc", "victim@example.com")]},
        {"headers": [("subject", "another")]},
    ],
)
def test_mail_compose_header_injection_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _mail(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": "Verify-Email"},
        {"kind": ""},
        {"recipient": "not an address"},
        {"recipient": "@example.org"},
        {"subject": "  "},
        {"action_url": "javascript:alert(1)"},
        {"action_url": None},
        {"action_label": None},
    ],
)
def test_mail_compose_bad_arguments_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _mail(**overrides)
