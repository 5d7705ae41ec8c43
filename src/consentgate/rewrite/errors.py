"""Errors the rewriter reports instead of guessing."""

from __future__ import annotations

import enum


class RewriteErrorReason(enum.Enum):
    """Machine-readable cause of a :class:`RewriteError`."""

    #: The document's encoding is not ASCII-compatible (UTF-16/32, ISO-2022-*, ...) or unknown.
    UNSAFE_CHARSET = "unsafe_charset"
    #: One tag (or an undecided ``<!`` construct) is larger than ``max_token_bytes``.
    TOKEN_TOO_LARGE = "token_too_large"  # noqa: S105 - not a secret
    #: A text transform's element content is larger than ``max_text_bytes``.
    TEXT_TOO_LARGE = "text_too_large"
    #: A truncation's container was never seen (only raised for ``required`` operations).
    CONTAINER_NOT_FOUND = "container_not_found"
    #: Another operation's target was never seen (only raised for ``required`` operations).
    TARGET_NOT_FOUND = "target_not_found"
    #: A text-transform callback raised; the exception is the ``__cause__``.
    CALLBACK_FAILED = "callback_failed"
    #: A ``Truncate`` with ``short=FAIL`` found fewer items in its container than it keeps.
    SHORT_CONTAINER = "short_container"
    #: The tree model cannot be sure where an element ends (nesting deeper than ``max_depth``
    #: or another limit) while a truncation depends on it: a walled page must fail closed.
    MODEL_LIMIT = "model_limit"
    #: A piece of the text a truncation dropped reappears elsewhere in the output (a
    #: framework's page data carrying the article): the cut would not hold.
    CUT_TEXT_ECHOED = "cut_text_echoed"
    #: ``feed()`` after ``close()``, or ``close()`` twice.
    CLOSED = "closed"


class RewriteError(Exception):
    """The rewriter could not do its job safely; callers serving gated content must fail closed."""

    def __init__(self, reason: RewriteErrorReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class SelectorError(ValueError):
    """A selector string could not be parsed; the message names the problem and its position."""
