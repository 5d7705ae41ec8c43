"""Consent classes: which readers see the same page.

A free page for a reader without a session depends, on our side, only on what is in
force for them: undecided, or the set of optional categories granted (times the
language, the region's regime, GPC and whether the page is framed, which travel in
request headers a cache can vary on). Readers of one class get the same bytes, so a
shared cache may keep one copy per class. The class is also written, unsigned, to the
``cg_class`` cookie, so that a CDN can put it in its cache key: it is not a secret, and
forging it only changes which public copy one gets (the gate refuses to mark a response
shareable when the cookie and the reader's real class differ, so a forged cookie cannot
make a copy of one class be stored under another).
"""

from __future__ import annotations

from collections.abc import Iterable

from consentgate.consent.state import Consent

#: The class of readers who have not decided (and the meaning of no class cookie).
UNDECIDED = "u"


def consent_class(consent: Consent, optional: Iterable[str]) -> str:
    """``u``, or ``g`` followed by ``.id`` for each optional category granted, sorted:
    ``g`` (only what is required), ``g.analytics``, ``g.analytics.marketing``.

    Category ids are ``[a-z][a-z0-9_-]*``, so the value is a valid cookie value and
    header token as it is.
    """
    if not consent.decided:
        return UNDECIDED
    granted = sorted(consent.granted.intersection(optional))
    return "g" + "".join(f".{category}" for category in granted)
