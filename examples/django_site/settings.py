"""Django settings for the example, as a function of the data folder.

They are applied with ``settings.configure(**django_settings(data_dir))`` (see
``asgi.py``), so the site runs — and its tests run — without ``manage.py`` or
``DJANGO_SETTINGS_MODULE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# DEMO ONLY — this key is public (it is in the source repository). A real site reads
# its own from the environment and never commits it.
DEMO_DJANGO_SECRET_KEY = "demo-only-NOT-SECRET-northfield-post-django-0123456789abcdef"  # noqa: S105 - demo only


def django_settings(data_dir: Path) -> dict[str, Any]:
    return {
        "DEBUG": False,
        "SECRET_KEY": DEMO_DJANGO_SECRET_KEY,
        "ALLOWED_HOSTS": ["localhost", "127.0.0.1", ".test"],
        "EXAMPLE_DATA_DIR": str(data_dir),
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        "MIDDLEWARE": [
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "ROOT_URLCONF": "examples.django_site.urls",
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(data_dir / "django.db"),
            }
        },
        "AUTH_PASSWORD_VALIDATORS": [
            {
                "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
                "OPTIONS": {"min_length": 8},
            },
        ],
        # The database session engine: the user_resolver loads the same sessions.
        "SESSION_ENGINE": "django.contrib.sessions.backends.db",
        "SESSION_COOKIE_SAMESITE": "Lax",
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
    }
