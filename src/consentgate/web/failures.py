"""The one failure path of every route we serve: :func:`failure_response`.

The consent endpoints, the account pages and the dashboard each hand their
:class:`~consentgate.web.forms.RequestFailure` here, with a :class:`FailurePage`: how
their HTML looks and which headers their pages carry. Everything else is decided here,
the same way for each of them: JSON or HTML, the status, the ``error`` code and the
message, ``Retry-After``, ``WWW-Authenticate`` and ``Allow``. The operator's ``failure_response``
hook, when it is passed, answers in our place; only the reader-facing routes pass it
(:meth:`consentgate.web.pages.PageKit.fail`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from consentgate.web.errors import Failure
from consentgate.web.forms import RequestFailure, private_headers

if TYPE_CHECKING:
    from consentgate.visitor import Visitor

__all__ = [
    "FailurePage",
    "FailureRenderer",
    "FailureResponse",
    "failure_response",
    "wants_json_answer",
]

# The operator's hook: (failure, message, visitor, wants_json) -> the response to send.
FailureResponse = Callable[[Failure, str, "Visitor", bool], Response]
# (failure, message) -> a whole HTML page, in one surface's style.
FailureRenderer = Callable[[Failure, str], str]
# The operator's hook with the visitor already bound: (failure, message, wants_json).
BoundHook = Callable[[Failure, str, bool], Response]


def _private() -> Mapping[str, str]:
    return MappingProxyType(private_headers())


@dataclass(frozen=True, slots=True)
class FailurePage:
    """How one surface shows a failure: the only thing the surfaces differ in."""

    render: FailureRenderer
    #: The headers of the surface's HTML pages (their CSP allows what ``render`` links).
    headers: Mapping[str, str]
    #: The headers of its JSON answers: per reader, never cached.
    json_headers: Mapping[str, str] = field(default_factory=_private)


def failure_response(
    failure: RequestFailure,
    *,
    wants_json: bool,
    page: FailurePage,
    hook: BoundHook | None = None,
) -> Response:
    """The answer to ``failure``: the operator's ``hook``'s if given, else ours — JSON
    (``{"error": code, "message": message}``) for a client that asked for it, else the
    page ``page`` renders — with the failure's status."""
    kind = failure.failure
    message = str(failure)
    response: Response
    if hook is not None:
        response = hook(kind, message, wants_json)
    elif wants_json:
        response = JSONResponse(
            {"error": kind.code, "message": message},
            status_code=kind.status,
            headers=dict(page.json_headers),
        )
    else:
        response = HTMLResponse(
            page.render(kind, message), status_code=kind.status, headers=dict(page.headers)
        )
    # Ours and the operator's answer alike: a client told to wait is told how long, and
    # one told to authenticate is told how (the hook is not given these numbers).
    if failure.retry_after is not None:
        response.headers.setdefault("retry-after", str(failure.retry_after))
    if failure.challenge is not None:
        response.headers.setdefault("www-authenticate", failure.challenge)
    if failure.allow:
        response.headers.setdefault("allow", ", ".join(failure.allow))
    return response


def wants_json_answer(request: Request) -> bool:
    """A client that sent JSON, or accepts JSON and not HTML (an API client, fetch())."""
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return "application/json" in content_type or (
        "application/json" in accept and "text/html" not in accept
    )
