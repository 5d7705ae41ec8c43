"""The settings of our reader pages' look (``[pages]``) and their reader.

``layout_path`` names a page of the site (a normal page with its masthead and navigation
and one element marked ``data-consentgate-content``) into which our pages (register, sign
in, account, settings, policy, receipt, messages) are set: see web/shell.py and
docs/pages.md. Empty (the default): our pages stand alone, in their own clean look.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consentgate.config._fields import read_fields
from consentgate.errors import ConfigError

# A path and nothing else: no query, no fragment, no scheme or host (it is fetched
# in-process from the site's own app, never over the network).
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
# What a Host header may say (a name or an address, an optional port).
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class PagesSettings:
    """Where our pages find the site's page shell, and how long they keep it."""

    #: The path of the site's layout page; "" for our own clean default page.
    layout_path: str = ""
    #: How long one fetched layout (per language) is used before it is fetched again.
    layout_cache_seconds: int = field(default=300, metadata={"range": (0, 86_400)})
    #: How long a fetch of the layout may take before our default page is used instead.
    layout_timeout_seconds: float = field(default=2.0, metadata={"range": (0, 30), "above": True})
    #: The Host header of the layout's request; "" sends the server's own address. Never
    #: the reader's: one fetched layout serves every reader, so no reader may choose it.
    layout_host: str = ""


def read_pages(key: str, raw: Mapping[str, Any]) -> PagesSettings:
    return read_fields(
        raw,
        PagesSettings,
        key + ".",
        check={"layout_path": _layout_path, "layout_host": _layout_host},
    )


def _layout_path(key: str, path: str) -> str:
    if path == "":
        return path
    if not path.startswith("/") or path.startswith("//") or not _PATH.fullmatch(path):
        raise ConfigError(key, f"must be a path on the site starting with '/', got {path!r}")
    return path


def _layout_host(key: str, host: str) -> str:
    if host and not _HOST.fullmatch(host):
        raise ConfigError(key, f"must be a host name, optionally with :port, got {host!r}")
    return host


def check_layout_path(settings: PagesSettings, prefix: str) -> None:
    """The layout is a page of the site: one under our prefix would be ours, fetched
    through our own routes (or nothing at all)."""
    path = settings.layout_path
    if path and (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
        raise ConfigError("pages.layout_path", f"must not be under the prefix {prefix!r}")
