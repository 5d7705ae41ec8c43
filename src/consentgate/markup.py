"""The one HTML escape of every page and snippet consentgate writes.

Every interpolated value, text or attribute, goes through :func:`escape`: ``&``, ``<``,
``>``, ``"`` and ``'`` become character references, so a value can close neither an
element nor a quoted attribute.
"""

from __future__ import annotations

import html


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)
