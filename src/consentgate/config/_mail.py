"""The reader of ``[mail]``: its fields come from mail/settings.py; what a type cannot
say (an address, a variable name, paths, which keys a transport needs) is checked here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from consentgate.config._fields import read_fields
from consentgate.errors import ConfigError
from consentgate.mail.settings import MailSettings

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
_BREAKS = re.compile(r"[\r\n\x00]")


def read_mail(key: str, raw: Mapping[str, Any], base_dir: Path) -> MailSettings:
    if "password" in raw:
        raise ConfigError(
            f"{key}.password",
            "the password does not belong in the configuration file: put it in an "
            f"environment variable and name that variable in {key}.password_env",
        )
    settings = read_fields(
        raw,
        MailSettings,
        key + ".",
        check={
            "host": _host,
            "password_env": _env_name,
            "from_address": _address,
            "from_name": _one_line,
            "username": _one_line,
            "ca_file": lambda key, path: _file(key, path, base_dir),
            "directory": lambda _, path: str((base_dir / path).resolve()),
        },
    )
    if settings.transport == "none":
        return settings
    if not settings.from_address:
        raise ConfigError(f"{key}.from_address", f"needed when {key}.transport is set")
    if settings.transport == "directory" and settings.directory is None:
        raise ConfigError(f"{key}.directory", f'needed when {key}.transport = "directory"')
    if (settings.username is None) != (settings.password_env is None):
        missing = "password_env" if settings.password_env is None else "username"
        raise ConfigError(f"{key}.{missing}", "username and password_env go together")
    return settings


def _host(key: str, host: str) -> str:
    if not host or _BREAKS.search(host) or " " in host:
        raise ConfigError(key, f"must be a host name or address, got {host!r}")
    return host


def _env_name(key: str, name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(
            key, f"must be the name of an environment variable (not the password), got {name!r}"
        )
    return name


def _address(key: str, address: str) -> str:
    if address and not _ADDRESS.fullmatch(address):
        raise ConfigError(
            key, f"must be an e-mail address such as news@example.org, got {address!r}"
        )
    return address


def _one_line(key: str, value: str) -> str:
    if _BREAKS.search(value):
        raise ConfigError(key, "must be one line")
    return value


def _file(key: str, path: str, base_dir: Path) -> str:
    full = (base_dir / path).resolve()
    if not full.is_file():
        raise ConfigError(key, f"no such file: {full}")
    return str(full)
