"""A configuration the middleware cannot run with stops the app at start-up, naming the key,
instead of letting the server report "startup complete" and then answer 500 to every
request (Starlette builds its middleware only when the first request, or the lifespan,
arrives)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from consentgate.config import Config, ConfigError

KEY = "a-test-key-that-is-long-enough-0123456789"

APP = """
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from consentgate import Config, ConsentGate


async def home(request):
    return PlainTextResponse("home")


app = Starlette(
    routes=[Route("/", home)],
    middleware=[Middleware(ConsentGate, config=Config.from_toml("consentgate.toml"))],
)
"""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONSENTGATE_SECRET_KEYS"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    return env


def _serve(site: Path) -> subprocess.CompletedProcess[str]:
    """Run uvicorn on the site as an operator would; it must exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=site,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _site(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "consentgate.toml").write_text(textwrap.dedent(toml))
    return tmp_path


@pytest.mark.slow
def test_startup_without_secret_key_stops_the_server(tmp_path: Path) -> None:
    site = _site(tmp_path, 'database_url = "sqlite:///consentgate.db"\n')
    try:
        result = _serve(site)
    except subprocess.TimeoutExpired as exc:  # it started and served: the old failure
        pytest.fail(f"the server started without a secret key: {exc.stderr!r}")
    assert result.returncode != 0
    assert "secret_keys: no secret key set" in result.stderr
    assert "Application startup complete" not in result.stderr


@pytest.mark.slow
def test_startup_with_misspelt_key_stops_the_server(tmp_path: Path) -> None:
    site = _site(tmp_path, f'secret_keys = ["{KEY}"]\n[policy]\nverison = "2"\n')
    try:
        result = _serve(site)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the server started with a misspelt key: {exc.stderr!r}")
    assert result.returncode != 0
    assert "policy.verison: unknown key — did you mean 'version'?" in result.stderr


def test_startup_secret_key_from_environment_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGATE_SECRET_KEYS", KEY)
    assert Config.from_mapping({}).secret_keys == (KEY,)


def test_startup_without_secret_key_refused_when_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping({})
    assert caught.value.key == "secret_keys"
    # Operator commands that only read the database may load it without one.
    assert Config.from_mapping({}, require_secret_keys=False).secret_keys == ()


@pytest.mark.parametrize(
    ("module", "options", "key", "extra"),
    [
        ("psycopg", {"database_url": "postgresql://127.0.0.1/test"}, "database_url", "postgres"),
        ("psycopg_pool", {"database_url": "postgres://127.0.0.1/test"}, "database_url", "postgres"),
        ("redis", {"meter_url": "redis://127.0.0.1:6379/0"}, "meter_url", "redis"),
    ],
)
def test_startup_missing_extra_refused_when_loading(
    module: str, options: dict[str, str], key: str, extra: str
) -> None:
    # A fresh interpreter in which the module cannot be imported (a None entry in
    # sys.modules is the import system's own "not installed"); the rest is the real thing.
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules[{module!r}] = None
        from consentgate.config import Config, ConfigError
        try:
            Config.from_mapping({{"secret_keys": [{KEY!r}], **{options!r}}})
        except ConfigError as exc:
            print(exc)
        else:
            print("loaded")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == (
        f"{key}: needs the {extra} extra: pip install 'consentgate[{extra}]' "
        f"(module {module!r} is not installed)"
    )


def test_startup_installed_extras_load() -> None:
    config = Config.from_mapping(
        {
            "secret_keys": [KEY],
            "database_url": "postgresql://127.0.0.1/test",
            "meter_url": "redis://127.0.0.1:6379/0",
        }
    )
    assert config.database_url == "postgresql://127.0.0.1/test"
    assert config.meter_url == "redis://127.0.0.1:6379/0"
