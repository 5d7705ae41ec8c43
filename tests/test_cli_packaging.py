"""consentgate as a user meets it: the installed command in a shell pipe, ``check-config
--config``, and the package metadata (licence, classifiers, URLs).

The pipe tests run the installed ``consentgate`` script in a real subprocess: a closed
pipe only shows there (in-process, pytest's capture never closes).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.cli import EXIT_BROKEN_PIPE, main
from consentgate.storage import ConsentRecord, SQLiteStorage

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_TOML = REPO_ROOT / "examples" / "newsroom" / "consentgate.toml"
LICENSE = REPO_ROOT / "LICENSE"
SECRET = "packaging-test-secret-0123456789-abcdefgh"
# Enough rows that the export (about 430 bytes a row) is many times a pipe's buffer
# (64 KiB on Linux): the command is still writing when the reader closes.
ROWS = 1_000
TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def consentgate_command() -> list[str]:
    """The console script that `pip install -e .` put next to this interpreter."""
    script = Path(sys.executable).parent / "consentgate"
    assert script.is_file(), f"{script} is missing: install the package (pip install -e .)"
    return [str(script)]


def child_env() -> dict[str, str]:
    """This environment less the key variable, and with the block-buffered stdout a
    user's shell pipe gives (no PYTHONUNBUFFERED)."""
    skip = {"CONSENTGATE_SECRET_KEYS", "PYTHONUNBUFFERED"}
    return {k: v for k, v in os.environ.items() if k not in skip}


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{SECRET}"]\ndatabase_url = "sqlite:///{tmp_path / "ledger.db"}"\n',
        encoding="utf-8",
    )
    return path


async def _fill_ledger(path: Path, rows: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with SQLiteStorage(path) as storage:
        for i in range(rows):
            await storage.record_consent(
                ConsentRecord(
                    consent_id=f"{i:032x}",
                    user_id=None,
                    action="grant",
                    granted=("necessary", "analytics"),
                    denied=("preferences", "marketing"),
                    policy_version="2026-01",
                    banner_text_sha256="b" * 64,
                    language="en",
                    region_mode="opt-in",
                    method="form",
                    ip_hmac="d" * 64,
                    user_agent="Mozilla/5.0 (packaging test)",
                    recorded_at=start + timedelta(seconds=i),
                )
            )


def assert_quiet_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


# -- a closed pipe --------------------------------------------------------------------


def test_export_piped_into_a_reader_that_stops_after_one_line_ends_without_traceback(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    asyncio.run(_fill_ledger(tmp_path / "ledger.db", ROWS))
    # `consentgate export consents --config … | head -1`, with head written out.
    with subprocess.Popen(
        [*consentgate_command(), "export", "consents", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=tmp_path,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()
        child.stdout.close()
        stderr = child.stderr.read().decode("utf-8", "replace")
        status = child.wait(timeout=TIMEOUT_S)
    assert json.loads(first)["consent_id"] == "0" * 32
    assert_quiet_stderr(stderr)
    assert stderr == ""
    assert status == EXIT_BROKEN_PIPE == 141


def test_check_config_into_a_pipe_closed_before_it_writes_ends_without_traceback() -> None:
    # The summary is small and leaves only in the flush at exit: the path where Python
    # itself would print "Exception ignored … BrokenPipeError" without the fix.
    with subprocess.Popen(
        [*consentgate_command(), "check-config", "--config", str(DEMO_TOML)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # long before the interpreter has even imported consentgate
        stderr = child.stderr.read().decode("utf-8", "replace")
        status = child.wait(timeout=TIMEOUT_S)
    assert_quiet_stderr(stderr)
    assert status == EXIT_BROKEN_PIPE


def test_check_config_through_a_pipe_read_to_the_end_still_exits_zero() -> None:
    done = subprocess.run(
        [*consentgate_command(), "check-config", "--config", str(DEMO_TOML)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"{DEMO_TOML}: OK"
    assert done.stderr == ""


# -- check-config --config --------------------------------------------------------------


def test_check_config_option_accepts_the_demo_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(DEMO_TOML)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{DEMO_TOML}: OK"
    assert "version 2025-06 at /privacy" in out
    assert err == ""


def test_check_config_option_and_positional_path_say_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--config", str(DEMO_TOML)]) == 0
    with_option = capsys.readouterr()
    assert main(["check-config", str(DEMO_TOML)]) == 0
    assert capsys.readouterr() == with_option


def test_check_config_option_missing_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["check-config", "--config", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{missing}: configuration file not found\n"


def test_check_config_without_a_path_reads_consentgate_toml_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "consentgate.toml: OK"


def test_check_config_without_a_path_or_file_names_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"]) == 1
    assert capsys.readouterr().err == "consentgate.toml: configuration file not found\n"


def test_check_config_option_and_path_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--config", str(DEMO_TOML), str(DEMO_TOML)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "give the file once" in err


def test_check_config_help_names_the_config_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--help"]) == 0
    assert re.search(r"--config PATH\s+the TOML file to check", capsys.readouterr().out)


# -- metadata -------------------------------------------------------------------------

STALE = "the installed metadata is stale: reinstall with pip install -e . (./run does it)"


def installed_metadata() -> importlib.metadata.PackageMetadata:
    return importlib.metadata.distribution("consentgate").metadata


def pyproject() -> dict[str, object]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_file_is_the_apache_2_licence() -> None:
    text = LICENSE.read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 consentgate contributors" in text


def test_installed_metadata_carries_the_license_file_and_spdx_expression() -> None:
    dist = importlib.metadata.distribution("consentgate")
    meta = dist.metadata
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"], STALE
    assert dist.read_text("licenses/LICENSE") == LICENSE.read_text(encoding="utf-8")


def test_installed_metadata_has_asgi_classifiers_and_no_wsgi_or_license_ones() -> None:
    classifiers = installed_metadata().get_all("Classifier") or []
    assert not [c for c in classifiers if "WSGI" in c], STALE
    # PEP 639: with License-Expression, licence classifiers are deprecated (and refused
    # by setuptools); the expression says it.
    assert not [c for c in classifiers if c.startswith("License ::")]
    for expected in (
        "Framework :: AsyncIO",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
        "Typing :: Typed",
    ):
        assert expected in classifiers, STALE


def test_python_version_classifiers_match_requires_python() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert project["requires-python"] == ">=3.11"
    minors = sorted(
        int(m.group(1))
        for c in project["classifiers"]
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert minors == [11, 12, 13]
    installed = installed_metadata()
    assert installed["Requires-Python"] == ">=3.11"
    assert set(installed.get_all("Classifier") or []) == set(project["classifiers"]), STALE


def test_project_urls_name_home_docs_and_source() -> None:
    urls = dict(entry.split(", ", 1) for entry in installed_metadata().get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Source"}, STALE
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Documentation"].endswith("/docs")
