"""The rewrite plan for one HTML response: where consent meets the HTML rewriter.

``consent/`` decides *what* (which categories are granted, which texts to show);
``rewrite/`` knows *how* to change HTML as it streams. This module is the one place
that knows both, so that neither has to know the other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from consentgate.consent.consent_mode import consent_mode_script
from consentgate.metrics import BANNER_IMPRESSIONS
from consentgate.rewrite import (
    AttributesCallback,
    InsertHTML,
    Operation,
    RewriteAttributes,
    Rewriter,
    compile_selector,
)
from consentgate.web.security import safe_next
from consentgate.web.templates import render_banner, render_settings_control

if TYPE_CHECKING:
    from starlette.datastructures import MutableHeaders

    from consentgate.consent.state import Consent
    from consentgate.middleware import ConsentGate
    from consentgate.visitor import Visitor

# Compiled once: selectors are parsed at import, not on every response.
GATED_ELEMENTS = compile_selector("script[data-consent], iframe[data-consent]")
CONSENT_MAX_TOKEN_BYTES = 16 << 20
_CSP_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")


def consent_rewriter(
    gate: ConsentGate,
    visitor: Visitor,
    headers: MutableHeaders,
    extra: Sequence[Operation] = (),
) -> tuple[Rewriter, list[str]]:
    """A rewriter for this page, and any Set-Cookie our insertions need (a CSRF token).

    ``extra`` are the registration wall's operations, run in the same single pass.
    """
    nonce = _script_nonce(headers.get("content-security-policy"))
    operations: list[Operation] = []
    if gate.config.consent_mode.enabled:
        script = consent_mode_script(gate.config, visitor.consent)
        nonce_attr = f' nonce="{nonce}"' if nonce else ""
        operations.append(InsertHTML.after_head_open(f"<script{nonce_attr}>{script}</script>"))
    operations.append(RewriteAttributes(GATED_ELEMENTS, activation(visitor.consent)))
    cookies: list[str] = []
    if shows_banner(gate, visitor):
        snippet, cookies = _banner_or_control(gate, visitor, nonce)
        operations.append(InsertHTML.before_body_close(snippet))
    operations.extend(extra)
    rewriter = Rewriter(
        operations,
        content_type=headers.get("content-type"),
        # Consent rewriting must not fail on a page with a huge inline image tag.
        max_token_bytes=CONSENT_MAX_TOKEN_BYTES,
    )
    return rewriter, cookies


def activation(consent: Consent) -> AttributesCallback:
    """Turn inert ``data-consent`` elements live when their category is granted."""

    def activate(tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
        category = attrs.get("data-consent", "")
        if not consent.allows(category):
            return None
        if tag == "script":
            return _live_script(attrs)
        if tag == "iframe" and "data-src" in attrs:
            live = {k: v for k, v in attrs.items() if k != "data-src"}
            live["src"] = attrs["data-src"]
            return live
        return None

    return activate


def _live_script(attrs: dict[str, str]) -> dict[str, str] | None:
    if attrs.get("type", "").strip().lower() != "text/plain":
        return None  # already live, or a data block we must not turn into code
    live = {k: v for k, v in attrs.items() if k not in ("type", "data-src", "data-type")}
    if "data-type" in attrs:
        live["type"] = attrs["data-type"]
    if "data-src" in attrs:
        live["src"] = attrs["data-src"]
    return live


def shows_banner(gate: ConsentGate, visitor: Visitor) -> bool:
    """Whether the page gets the banner (or, once decided, the settings link): not a page
    requested for a frame, whose parent page shows them (a second banner inside an embed
    would take the keyboard focus), nor one under ``exclude_paths``."""
    if visitor.framed:
        return False
    return not gate.no_banner_paths.matches(visitor.path_with_query.partition("?")[0])


def _banner_or_control(
    gate: ConsentGate, visitor: Visitor, nonce: str | None
) -> tuple[str, list[str]]:
    next_url = safe_next(visitor.path_with_query)
    if not visitor.consent.needs_banner:
        # The control is a plain link: no form, so no CSRF token to mint.
        return render_settings_control(gate.endpoints.context(visitor, "", next_url, nonce)), []
    token, cookie = gate.endpoints.csrf_token_for(visitor)
    ctx = gate.endpoints.context(visitor, token, next_url, nonce)
    gate.metrics.add(BANNER_IMPRESSIONS)
    return render_banner(ctx), [cookie] if cookie else []


def _script_nonce(csp: str | None) -> str | None:
    """Reuse the page's CSP nonce, so our script runs under a strict policy too."""
    if not csp:
        return None
    match = _CSP_NONCE.search(csp)
    return match.group(1) if match else None
