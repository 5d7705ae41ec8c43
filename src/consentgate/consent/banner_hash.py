"""The SHA-256 of the banner text a reader was shown, as the ledger records it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from consentgate.consent.texts import banner_text_sha256, resolve_texts

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.visitor import Visitor


class BannerHashes:
    """The text depends on the language, the region's regime (its intro) and whether a
    GPC note was shown; there are few combinations, so each is computed once."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._hashes: dict[tuple[str, str, bool], str] = {}

    def of(self, visitor: Visitor) -> str:
        key = (visitor.language, visitor.mode, visitor.gpc)
        digest = self._hashes.get(key)
        if digest is None:
            config = self._config
            digest = banner_text_sha256(
                resolve_texts(visitor.language, config.texts),
                config.categories,
                config.policy.version,
                mode=visitor.mode,
                gpc=visitor.gpc,
            )
            self._hashes[key] = digest
        return digest
