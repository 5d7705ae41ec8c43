"""ASGI entry point of the Northfield Post: Django wrapped by consentgate.

Run it:  .venv/bin/uvicorn examples.django_site.asgi:application --port 8002
(data in ./demo-data/django_site, or in $NORTHFIELD_DATA_DIR).

``application`` is built on first access, so that importing this module (as the tests
do, to call ``create_application(tmp_dir)``) configures nothing by itself.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from starlette.types import ASGIApp, Receive, Scope, Send

from consentgate import Config, ConsentGate

from .settings import django_settings

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path(os.environ.get("NORTHFIELD_DATA_DIR", "demo-data/django_site"))

# DEMO ONLY — this key is public (it is in the source repository). A real site generates
# its own (`consentgate keygen`) and sets CONSENTGATE_SECRET_KEYS.
DEMO_CONSENTGATE_KEY = "demo-only-NOT-SECRET-northfield-post-consentgate-0123456789"


def consentgate_config(data_dir: Path) -> Config:
    """The consentgate configuration in code (a consentgate.toml would hold the same)."""
    return Config.from_mapping(
        {
            "secret_keys": [DEMO_CONSENTGATE_KEY],
            "database_url": f"sqlite:///{data_dir / 'consentgate.db'}",
            "site_name": "The Northfield Post",
            "policy": {"version": "2026-02", "url": "/privacy", "text_file": "privacy-policy.md"},
            "cookies": [
                # Django's own cookies are strictly necessary.
                {"name": "sessionid", "category": "necessary"},
                {"name": "csrftoken", "category": "necessary"},
                {"name": "post_stats_id", "category": "analytics"},
                {"name": "post_ad_id", "category": "marketing"},
            ],
            "accounts": {"enabled": False},  # Django's auth does accounts
            "wall": {
                "article_selector": "div.article-body",
                "lead_paragraphs": 2,
                "register_url": "/signup",
                "login_url": "/signin",
                "rules": [{"path": "/articles/*", "access": "metered"}],
                "meter": {"limit": 3, "period_days": 30},
            },
        },
        base_dir=HERE,
    )


# -- who is signed in: Django's session, read from the ASGI scope -------------------------
async def django_user_id(scope: Scope) -> str | None:
    """consentgate's ``user_resolver``: the Django session cookie → the user's id.

    consentgate runs *outside* Django, before its middleware, so there is no
    ``request.user`` yet: load the session the way Django's auth does.
    """
    from django.conf import settings
    from django.http import parse_cookie

    session_key = None
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            session_key = parse_cookie(value.decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    user_id: str | None = await sync_to_async(_user_id_for_session)(session_key)
    return user_id


def _user_id_for_session(session_key: str) -> str | None:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.utils.crypto import constant_time_compare

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user_id = store.get(SESSION_KEY)  # "_auth_user_id"; {} for a missing/expired session
    if user_id is None:
        return None
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return None
    # As django.contrib.auth.get_user does: a password change ends older sessions.
    session_hash = store.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return str(user.pk)


# -- building the application ------------------------------------------------------------
def _with_lifespan(app: ASGIApp) -> ASGIApp:
    """Django refuses ASGI ``lifespan`` messages; answer them, so consentgate (outside
    this) sees start-up and shutdown and opens and closes its database then."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return wrapped


def _migrate() -> None:
    """``migrate`` in a worker thread: servers such as uvicorn import the app inside a
    running event loop, where Django refuses synchronous database work."""
    from django.core.management import call_command
    from django.db import connections

    def run() -> None:
        try:
            call_command("migrate", interactive=False, verbosity=0)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result()


def create_application(data_dir: Path = DEFAULT_DATA_DIR) -> ASGIApp:
    """Configure Django for ``data_dir``, migrate its database, wrap it in consentgate.

    Django's settings are per process: a second call must use the same ``data_dir``.
    """
    import django
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.configured:
        settings.configure(**django_settings(data_dir))
        django.setup()
    elif str(data_dir) != settings.EXAMPLE_DATA_DIR:
        raise RuntimeError(
            f"Django is already configured for {settings.EXAMPLE_DATA_DIR}, not {data_dir}"
        )
    _migrate()
    return ConsentGate(
        _with_lifespan(get_asgi_application()),
        config=consentgate_config(data_dir),
        user_resolver=django_user_id,
    )


_application: ASGIApp | None = None


def __getattr__(name: str) -> Any:
    """``examples.django_site.asgi:application``, built with the default data folder."""
    global _application
    if name == "application":
        if _application is None:
            _application = create_application()
        return _application
    raise AttributeError(name)
