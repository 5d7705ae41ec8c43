"""Readers of ``[[newsletters]]`` (the lists offered to readers) and ``public_url`` (the
site's origin, which links in mails are built on). The settings type is
accounts/newsletters.py's."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from consentgate.accounts.newsletter_lists import LIST_ID, NewsletterList
from consentgate.errors import ConfigError

_TEXTS = ("name", "description", "frequency")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Deliberately loose: one @, no spaces, nothing that would end a header or a URI.
_MAILTO = re.compile(r"[^\s@<>,\"]+@[^\s@<>,\"?]+\.[^\s@<>,\"?]+")


def read_newsletters(value: Any, languages: Sequence[str]) -> tuple[NewsletterList, ...]:
    """Each list: ``id``, ``name``, ``description``, ``frequency`` (a text, or a table of
    texts by language with English in it) and an optional ``unsubscribe_mailto``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("newsletters", "must be an array of tables: [[newsletters]]")
    lists: list[NewsletterList] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        key = f"newsletters[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(key, "must be a table with id, name, description, frequency")
        list_id = item.get("id")
        if not isinstance(list_id, str) or not LIST_ID.fullmatch(list_id):
            raise ConfigError(
                f"{key}.id",
                f"must be 1 to 40 lower-case letters, digits or '-', got {list_id!r}",
            )
        if list_id in seen:
            raise ConfigError(f"{key}.id", f"{list_id!r} is the id of an earlier list")
        seen.add(list_id)
        texts = {name: _texts(f"{key}.{name}", item.get(name), languages) for name in _TEXTS}
        mailto = item.get("unsubscribe_mailto", "")
        if not isinstance(mailto, str) or (mailto and not _MAILTO.fullmatch(mailto)):
            raise ConfigError(
                f"{key}.unsubscribe_mailto", f"must be an e-mail address, got {mailto!r}"
            )
        lists.append(NewsletterList(list_id, unsubscribe_mailto=mailto, **texts))
    return tuple(lists)


def _texts(key: str, value: Any, languages: Sequence[str]) -> dict[str, str]:
    if isinstance(value, str):
        value = {"en": value}
    if not isinstance(value, Mapping):
        raise ConfigError(key, 'must be a text, or a table of texts by language: {en = "…"}')
    texts: dict[str, str] = {}
    for lang in value:  # iterated: each key is checked here
        text = value[lang]
        if lang not in languages:
            raise ConfigError(f"{key}.{lang}", f"not one of the languages ({', '.join(languages)})")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{key}.{lang}", "must be a non-empty text")
        texts[lang] = text.strip()
    if "en" not in texts:
        raise ConfigError(f"{key}.en", "the English text is required (the fallback)")
    return texts


def check_public_url(key: str, value: str) -> str:
    """An origin such as ``https://news.example``: https, except for a local development
    host (RFC 8058 one-click unsubscription needs an HTTPS link)."""
    if not value:
        return value
    parts = urlsplit(value)
    local = parts.hostname in _LOCAL_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigError(
            key, f"must be an https:// origin such as https://news.example, got {value!r}"
        )
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(key, f"must be an origin without a path, got {value!r}")
    return value.rstrip("/")


def check_newsletters_have_url(lists: Sequence[NewsletterList], public_url: str) -> None:
    if lists and not public_url:
        raise ConfigError(
            "public_url",
            "needed with [[newsletters]]: the confirmation and unsubscribe links in mails "
            "are built on it (e.g. https://news.example)",
        )
