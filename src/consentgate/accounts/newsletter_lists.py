"""The newsletters an operator offers (``[[newsletters]]``), as settings: what
``consentgate.config`` reads, with nothing of the service (accounts/newsletters.py) it
configures, so the configuration needs no part of the accounts to describe them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["LIST_ID", "NewsletterList"]

LIST_ID = re.compile(r"[a-z0-9-]{1,40}")


@dataclass(frozen=True, slots=True)
class NewsletterList:
    """One list an operator offers (``[[newsletters]]``); texts by language, English
    required, the English text standing in for a language without one."""

    id: str
    name: Mapping[str, str]
    description: Mapping[str, str]
    frequency: Mapping[str, str]
    #: An address for RFC 2369 mailto unsubscription, if the operator handles one.
    unsubscribe_mailto: str = ""

    def __post_init__(self) -> None:
        if not LIST_ID.fullmatch(self.id):
            raise ValueError(f"a newsletter id must match [a-z0-9-]{{1,40}}, got {self.id!r}")
        for name in ("name", "description", "frequency"):
            texts = getattr(self, name)
            if not texts.get("en", "").strip():
                raise ValueError(f"newsletter {self.id!r} needs an English {name}")
            object.__setattr__(self, name, MappingProxyType(dict(texts)))

    def text(self, name: str, lang: str) -> str:
        texts: Mapping[str, str] = getattr(self, name)
        return texts.get(lang) or texts["en"]

    def text_shown(self, lang: str) -> str:
        """Exactly the words a reader sees for this list: the ledger's evidence."""
        return "\n".join(self.text(n, lang) for n in ("name", "description", "frequency"))
