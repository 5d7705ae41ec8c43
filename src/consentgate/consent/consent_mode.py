"""Google Consent Mode v2: the ``gtag('consent', 'default', …)`` call for this reader.

It must run before any Google tag loads, so the pipeline puts it first in ``<head>``.
Each configured category names the signals it controls; a signal is ``granted`` only
if every category that controls it is granted (one "no" is enough to deny).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from consentgate.consent.settings import CONSENT_MODE_SIGNALS

if TYPE_CHECKING:
    from consentgate.config import Config
    from consentgate.consent.state import Consent


def consent_mode_signals(config: Config, consent: Consent) -> dict[str, str]:
    states: dict[str, bool] = {}
    for category in config.categories:
        for signal in category.consent_mode:
            states[signal] = states.get(signal, True) and consent.allows(category.id)
    # Signals no category claims stay denied: nobody asked the reader about them.
    return {s: "granted" if states.get(s, False) else "denied" for s in CONSENT_MODE_SIGNALS}


def consent_mode_script(config: Config, consent: Consent) -> str:
    """JavaScript text (no ``<script>`` tag) that sets the defaults for this reader."""
    defaults: dict[str, object] = dict(consent_mode_signals(config, consent))
    if not consent.decided:
        # The banner may still change the answer; tags wait this long for an update.
        defaults["wait_for_update"] = config.consent_mode.wait_for_update_ms
    # json.dumps escapes nothing HTML-relevant here: keys and values are our constants.
    return (
        "window.dataLayer=window.dataLayer||[];"
        "function gtag(){dataLayer.push(arguments);}"
        f"gtag('consent','default',{json.dumps(defaults, separators=(',', ':'))});"
    )
