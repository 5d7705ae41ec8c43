"""``consentgate probe``: ask a running site for its walled articles the ways a reader
who wants the text for free would, and check that none of them gets it.

For each article path the probe

1. fetches the article as a **registered reader** (signed in through the site's own
   ``{prefix}/login`` form, or with a session cookie the operator copied): the
   reference text;
2. spends an **anonymous** reader's meter on the other paths (the other articles and
   any ``--spend`` paths), then fetches the article: the *exhausted* reader's answer,
   which must be cut. The registered reader's text blocks that this answer does not
   contain are the hidden text; runs of it that the answer does contain (a partly cut
   paragraph) are public and never count as a leak;
3. asks again as four anonymous readers — *exhausted*, *tampered* (a meter cookie with
   a broken signature, which must count as exhausted), *dropped* (the exhausted
   reader's cookies without the meter) and *fresh* (no cookies) — through every
   channel in :data:`CHANNELS`: methods, ranges, conditionals, encodings, ``Accept``
   variants, path variants and crawler claims. A dropped or fresh reader may get a
   metered article free (a cookie meter starts again); its channels are then not
   judged and the table says ``free read``;
4. looks for the hidden text in each answer: decoded (Content-Encoding), as HTML text,
   in attributes, comments and scripts, inside JSON-LD and JSON bodies. A **leak** is
   any run of :data:`MIN_RUN` or more characters (whitespace collapsed) of the hidden
   text, a HEAD length or ``Content-Range`` total that gives away the full copy's
   length, or a ``304`` that validates the registered reader's ETag.

Standard library only (``http.client``, ``html.parser``): the probe runs wherever the
operator is, against any site, and adds no runtime dependency. Every request has a
timeout and the whole run a request cap. Exit status: 0 no leak, 1 a leak (or an
article that is not walled at all), 2 usage, sign-in or connection problems, or a run
that could not check everything it should (no leak found, but not every answer read).

The package, one module per concern, imports flowing one way (each only from the ones
before it): :mod:`.errors` and :mod:`.settings`; :mod:`.text` (markup to searchable
text); :mod:`.client` (HTTP, cookies); :mod:`.decoding` (content codings);
:mod:`.channels`; :mod:`.results`; :mod:`.checks`; :mod:`.signin`; :mod:`.prober` (the
run); :mod:`.report` (the table); :mod:`.command` (the command line).
"""

from __future__ import annotations

# Names beyond __all__ are re-exported as `X as X`: what cli/probe.py (add_arguments,
# run) and tests reach for, as when this was one module, without widening `import *`.
from consentgate.operator.probe.channels import CHANNELS, Channel
from consentgate.operator.probe.channels import Target as Target
from consentgate.operator.probe.checks import declared_length as declared_length
from consentgate.operator.probe.client import Answer
from consentgate.operator.probe.client import Client as Client
from consentgate.operator.probe.client import Jar as Jar
from consentgate.operator.probe.command import add_arguments as add_arguments
from consentgate.operator.probe.command import run as run
from consentgate.operator.probe.decoding import (
    answer_text as answer_text,
)
from consentgate.operator.probe.decoding import (
    decode_body as decode_body,
)
from consentgate.operator.probe.decoding import (
    decoded_or_raw as decoded_or_raw,
)
from consentgate.operator.probe.decoding import (
    is_json as is_json,
)
from consentgate.operator.probe.errors import (
    ExchangeFailed as ExchangeFailed,
)
from consentgate.operator.probe.errors import (
    ProbeError,
)
from consentgate.operator.probe.errors import (
    RequestCapReached as RequestCapReached,
)
from consentgate.operator.probe.errors import (
    Undecodable as Undecodable,
)
from consentgate.operator.probe.prober import Prober, run_probe
from consentgate.operator.probe.report import (
    summary_line as summary_line,
)
from consentgate.operator.probe.report import (
    table_lines as table_lines,
)
from consentgate.operator.probe.results import ProbeReport, Reference, Row, State, Verdict
from consentgate.operator.probe.settings import (
    BINGBOT_IP as BINGBOT_IP,
)
from consentgate.operator.probe.settings import (
    BINGBOT_UA as BINGBOT_UA,
)
from consentgate.operator.probe.settings import (
    BROWSER_UA as BROWSER_UA,
)
from consentgate.operator.probe.settings import (
    DEFAULT_COOKIES as DEFAULT_COOKIES,
)
from consentgate.operator.probe.settings import (
    DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES,
)
from consentgate.operator.probe.settings import (
    DEFAULT_MAX_REQUESTS as DEFAULT_MAX_REQUESTS,
)
from consentgate.operator.probe.settings import (
    DEFAULT_PREFIX as DEFAULT_PREFIX,
)
from consentgate.operator.probe.settings import (
    DEFAULT_TIMEOUT as DEFAULT_TIMEOUT,
)
from consentgate.operator.probe.settings import (
    GOOGLE_REFERER as GOOGLE_REFERER,
)
from consentgate.operator.probe.settings import (
    GOOGLEBOT_IP as GOOGLEBOT_IP,
)
from consentgate.operator.probe.settings import (
    GOOGLEBOT_UA as GOOGLEBOT_UA,
)
from consentgate.operator.probe.settings import (
    HTML_ACCEPT as HTML_ACCEPT,
)
from consentgate.operator.probe.settings import (
    LENGTH_SLACK as LENGTH_SLACK,
)
from consentgate.operator.probe.settings import (
    MIN_RUN,
    ProbeSettings,
)
from consentgate.operator.probe.settings import (
    PASSWORD_ENV as PASSWORD_ENV,
)
from consentgate.operator.probe.settings import (
    STRIDE as STRIDE,
)
from consentgate.operator.probe.settings import (
    WINDOW as WINDOW,
)
from consentgate.operator.probe.signin import sign_in as sign_in
from consentgate.operator.probe.text import (
    extract_blocks,
    searchable_text,
    secret_windows,
)
from consentgate.operator.probe.text import (
    normalize as normalize,
)

__all__ = [
    "CHANNELS",
    "MIN_RUN",
    "Answer",
    "Channel",
    "ProbeError",
    "ProbeReport",
    "ProbeSettings",
    "Prober",
    "Reference",
    "Row",
    "State",
    "Verdict",
    "extract_blocks",
    "run_probe",
    "searchable_text",
    "secret_windows",
]
