"""The [mail] section: defaults, what each transport needs, and every mistake refused at
start-up with the key named (a password written into the file most of all)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO_ROOT, SECRET

from consentgate.config import Config, ConfigError, MailSettings


def _load(mail: dict[str, Any], base_dir: Path | None = None) -> Config:
    return Config.from_mapping(
        {"secret_keys": [SECRET], "mail": mail, "public_url": "https://news.example"},
        base_dir=base_dir,
    )


def test_mail_config_default_sends_nothing_yet() -> None:
    config = Config.from_mapping({"secret_keys": [SECRET]})
    assert config.mail == MailSettings()
    assert config.mail.transport == "none"
    assert config.mail.effective_port == 587


def test_mail_config_smtp_values(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = _load(
        {
            "transport": "smtp",
            "host": "smtp.example.org",
            "security": "tls",
            "username": "news",
            "password_env": "NEWS_SMTP_PASSWORD",
            "ca_file": "ca.pem",
            "from_address": "news@example.org",
            "from_name": "Example News",
            "timeout_seconds": 10,
            "max_attempts": 5,
            "poll_seconds": 5,
        },
        base_dir=tmp_path,
    )
    mail = config.mail
    assert mail.effective_port == 465
    assert mail.ca_file == str((tmp_path / "ca.pem").resolve())
    assert mail.timeout_seconds == 10.0 and mail.max_attempts == 5
    assert mail.password_env == "NEWS_SMTP_PASSWORD"


def test_mail_config_directory_is_relative_to_the_file(tmp_path: Path) -> None:
    config = _load(
        {"transport": "directory", "directory": "mail-out", "from_address": "n@example.org"},
        base_dir=tmp_path,
    )
    assert config.mail.directory == str((tmp_path / "mail-out").resolve())


@pytest.mark.parametrize(
    ("mail", "key", "reason"),
    [
        ({"password": "hunter2"}, "mail.password", "environment variable"),
        ({"transport": "sendmail"}, "mail.transport", "must be one of"),
        ({"security": "ssl"}, "mail.security", "must be one of"),
        ({"port": 0}, "mail.port", "must be"),
        ({"port": "25"}, "mail.port", "whole number"),
        ({"timeout_seconds": 0}, "mail.timeout_seconds", "must be"),
        ({"max_attempts": 0}, "mail.max_attempts", "must be"),
        ({"password_env": "hunter2 !"}, "mail.password_env", "name of an environment"),
        ({"from_address": "news"}, "mail.from_address", "e-mail address"),
        ({"from_name": "News\r\nBcc: x@y.z"}, "mail.from_name", "one line"),
        ({"host": "smtp example"}, "mail.host", "host name"),
        ({"transport": "smtp"}, "mail.from_address", "needed"),
        ({"transport": "directory", "from_address": "n@example.org"}, "mail.directory", "needed"),
        (
            {"transport": "smtp", "from_address": "n@example.org", "username": "u"},
            "mail.password_env",
            "go together",
        ),
        ({"ca_file": "missing.pem"}, "mail.ca_file", "no such file"),
        ({"form_address": "n@example.org"}, "mail.form_address", "did you mean 'from_address'"),
    ],
)
def test_mail_config_mistakes_name_the_key(
    mail: dict[str, Any], key: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(mail, base_dir=tmp_path)
    assert refused.value.key == key
    assert reason in refused.value.reason


def test_mail_config_smtp_without_public_url_is_refused_naming_it() -> None:
    # The links of account mails would otherwise follow the request's Host header,
    # which the requester writes (a reset link pointing at the asker's server).
    smtp = {"transport": "smtp", "from_address": "n@example.org"}
    with pytest.raises(ConfigError) as refused:
        Config.from_mapping({"secret_keys": [SECRET], "mail": smtp})
    assert refused.value.key == "public_url"
    assert "links in account mails" in refused.value.reason
    without_accounts = {"secret_keys": [SECRET], "mail": smtp, "accounts": {"enabled": False}}
    assert Config.from_mapping(without_accounts).mail.transport == "smtp"


def test_mail_config_reference_lists_every_key() -> None:
    reference = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = reference.split("## `[mail]`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {f.name for f in dataclasses.fields(MailSettings)}
