"""The probe's errors: what stops the run, what stops one request, what stops
reading one answer."""

from __future__ import annotations


class ProbeError(Exception):
    """A problem that stops the probe: a bad argument, a refused sign-in, no server."""


class RequestCapReached(ProbeError):
    """The run asked as many times as ``--max-requests`` allows."""


class ExchangeFailed(ProbeError):
    """One request got no (complete) answer: a timeout, a reset, bad HTTP. The probe
    notes it and goes on; a refused connection (the site is down) stops the run."""


class Undecodable(ProbeError):
    """A body the probe cannot undo the content coding of (or that decodes too large)."""
