"""The error of a wrong configuration value, shared by the loader (``config/``) and the
settings types its owners hold (``consent/``, ``wall/``, ``accounts/``).

A leaf module: it imports nothing of consentgate, so that a settings type can raise it
without importing the loader that imports the settings types."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
