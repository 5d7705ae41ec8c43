"""The consentgate command: check-config, keygen, and the parts of demo that need no server."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from consentgate.cli import main, redact_url
from consentgate.cli._common import url_passwords

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "examples" / "newsroom"
DEMO_TOML = DEMO_DIR / "consentgate.toml"
GOOD_KEY = "k" * 40


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def write(tmp_path: Path, text: str, name: str = "consentgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_accepts_the_demo_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(DEMO_TOML)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{DEMO_TOML}: OK"
    assert err == ""
    digest = hashlib.sha256((DEMO_DIR / "privacy-policy.md").read_bytes()).hexdigest()
    assert digest[:16] in out
    assert "privacy-policy.md" in out
    assert "version 2025-06 at /privacy" in out
    assert "necessary (required), preferences, analytics, marketing (GPC)" in out
    assert "demo_analytics_id → analytics" in out
    assert "demo_ad_id → marketing" in out
    assert "demo_text_size → preferences" in out
    assert "US opt-out" in out
    assert "sqlite:///" in out
    assert "1 from the file" in out


def test_demo_config_covers_every_cookie_the_site_sets() -> None:
    from consentgate.config import Config

    config = Config.from_toml(DEMO_TOML)
    assert {(r.pattern, r.category) for r in config.cookies} == {
        ("demo_analytics_id", "analytics"),
        ("demo_ad_id", "marketing"),
        ("demo_text_size", "preferences"),
    }
    assert config.consent_mode.enabled
    assert config.regions.mode_for("US") == "opt-out"
    assert config.regions.country_header == "x-demo-country"
    assert config.policy.text_file is not None
    assert config.policy.text_file.endswith("privacy-policy.md")
    assert config.controller_name and config.controller_email
    assert all(len(k) >= 32 and "demo" in k.lower() for k in config.secret_keys)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            '[regions]\ncountry_header = "X-C"\n[regions.countries]\nUS = "maybe"\n',
            "regions.countries.US",
        ),
        ('[[cookies]]\nname = "x"\ncategory = "snacks"\n', "cookies[0].category"),
        ("consent_lifetime_days = 9999\n", "consent_lifetime_days"),
        ('colour = "blue"\n', "colour"),
    ],
)
def test_check_config_names_the_broken_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, key: str
) -> None:
    path = write(tmp_path, f'secret_keys = ["{GOOD_KEY}"]\n' + body)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}: {key}: ")


def test_check_config_reports_bad_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "secret_keys = [unterminated\n")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: not valid TOML")


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.toml"
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"{path}: configuration file not found"


def test_check_config_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path}: cannot read")


def test_check_config_requires_a_secret_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'site_name = "Example"\n')
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"{path}: secret_keys: no secret key set (in the configuration or "
        "CONSENTGATE_SECRET_KEYS); generate one with `consentgate keygen`"
    )


def test_check_config_takes_the_key_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENTGATE_SECRET_KEYS", f"{GOOD_KEY}, {'o' * 40}")
    path = write(tmp_path, 'site_name = "Example"\n')
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 from CONSENTGATE_SECRET_KEYS (rotation)" in out
    assert GOOD_KEY not in out  # never print the keys themselves


def test_check_config_rejects_a_short_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'secret_keys = ["short"]\n')
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"{path}: secret_keys[0]: too short")


def test_check_config_hides_database_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'secret_keys = ["{GOOD_KEY}"]\n'
        'database_url = "postgresql://cg:hunter2@db.internal:5432/consent"\n',
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "postgresql://cg:***@db.internal:5432/consent" in out


def test_redact_url() -> None:
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"


def test_redact_url_query_password_is_masked() -> None:
    # libpq takes a password from the query too; it must not be shown either.
    assert (
        redact_url("postgresql://u@h/db?sslmode=require&password=hunter2&application_name=x")
        == "postgresql://u@h/db?sslmode=require&password=***&application_name=x"
    )
    assert redact_url("postgresql://u:a@h/db?PASSWORD=b") == "postgresql://u:***@h/db?PASSWORD=***"
    assert redact_url("postgresql://h/db?passwords=kept") == "postgresql://h/db?passwords=kept"


def test_url_passwords_finds_both_places_written_and_decoded() -> None:
    found = url_passwords("postgresql://u:p%40ss@h/db?password=s%26cret&x=1")
    assert sorted(found) == sorted(["p%40ss", "p@ss", "s%26cret", "s&cret"])
    assert url_passwords("sqlite:////tmp/x.db") == []


def test_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    keys = []
    for _ in range(3):
        assert main(["keygen"]) == 0
        out, err = capsys.readouterr()
        lines = out.splitlines()
        assert len(lines) == 1
        keys.append(lines[0])
        assert "secret_keys" in err and "CONSENTGATE_SECRET_KEYS" in err
        assert "FIRST" in err
    assert len(set(keys)) == 3
    for key in keys:
        assert len(key) == 64
        assert re.fullmatch(r"[A-Za-z0-9_-]+", key)


def test_keygen_output_is_a_valid_secret_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen"]) == 0
    key = capsys.readouterr().out.strip()
    path = write(tmp_path, f'secret_keys = ["{key}"]\n')
    assert main(["check-config", str(path)]) == 0


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in ("demo", "check-config", "keygen"):
        assert command in err


def test_help_and_version_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0
    assert "consentgate" in capsys.readouterr().out


def test_demo_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--port", "70000"]) == 2
    assert "port must be between" in capsys.readouterr().err


def test_demo_ships_in_the_checkout() -> None:
    from consentgate.cli import examples_dir

    assert (examples_dir() / "newsroom" / "app.py").is_file()
