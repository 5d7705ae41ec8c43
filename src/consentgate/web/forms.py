"""What every POST to our endpoints shares: a bounded body, urlencoded fields, CSRF.

The consent endpoints, the account pages and the admin dashboard all read their forms
here, so a limit or a CSRF rule is set once and holds for each of them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from consentgate.web.errors import Failure
from consentgate.web.security import (
    DEFAULT_FRAME_ANCESTORS,
    CsrfTokens,
    page_security_headers,
    same_origin,
)

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 100
# Our JSON bodies are an object holding a list of strings (depth 2); 8 leaves room for
# API clients and stays far below the recursion json.loads would need.
MAX_JSON_DEPTH = 8

Form = dict[str, list[str]]


class RequestFailure(Exception):
    """A request we refuse; ``failure`` says which way (status, code and message).

    ``message`` replaces the enum's wording where a route has its own (the account
    pages' texts in the reader's language); ``retry_after`` (seconds, rounded up to a
    whole one of at least 1) and ``challenge`` (a ``WWW-Authenticate`` value) become
    headers of whatever answers the failure, whoever renders it.
    """

    def __init__(
        self,
        failure: Failure,
        detail: str | None = None,
        *,
        message: str | None = None,
        retry_after: float | None = None,
        challenge: str | None = None,
    ) -> None:
        if message is None:
            message = failure.message if detail is None else f"{failure.message} {detail}"
        super().__init__(message)
        self.failure = failure
        self.detail = detail
        self.retry_after = None if retry_after is None else retry_seconds(retry_after)
        self.challenge = challenge


def retry_seconds(wait_seconds: float) -> int:
    """A wait as ``Retry-After`` says it: whole seconds, never 0 (that reads as "now")."""
    return max(1, math.ceil(wait_seconds))


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused past ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestFailure(Failure.BODY_TOO_LARGE, f"(at most {limit} bytes)")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestFailure(Failure.BODY_TOO_LARGE, f"(at most {limit} bytes)")
    except ClientDisconnect:
        raise RequestFailure(Failure.BAD_FORM, "The client went away.") from None
    return bytes(body)


def parse_urlencoded(body: bytes, max_fields: int = MAX_FIELDS) -> Form:
    """Our forms are urlencoded; the standard library reads them (no multipart needed)."""
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestFailure(Failure.BAD_FORM, f"({exc})") from None


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A UTF-8 JSON body nested at most ``max_depth`` arrays or objects deep.

    The depth is counted before parsing: json.loads recurses once per level, so 5,000
    ``[`` (10 kB, well under the size limit) would end in a RecursionError, a 500.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestFailure(Failure.BAD_JSON, f"(not UTF-8: {exc.reason})") from None
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise RequestFailure(Failure.JSON_TOO_DEEP, f"(at most {max_depth} levels)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError: malformed JSON, or an integer past Python's 4,300-digit limit.
        raise RequestFailure(Failure.BAD_JSON, f"({exc})") from None


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text``, strings skipped; linear,
    defined for malformed input too (json.loads then says what is wrong), and it stops
    as soon as the depth passes ``stop_above``."""
    depth = deepest = 0
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and depth > stop_above:
                break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


# A whole string (an unterminated one runs to the end) or a bracket: no backtracking.
_JSON_STRUCTURE = re.compile(r'"(?:[^"\\]+|\\.)*"?|[\[\]{}]', re.DOTALL)


async def read_form(request: Request, limit: int = MAX_BODY_BYTES) -> Form:
    """An urlencoded form of at most ``limit`` bytes."""
    content_type = media_type(request)
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise RequestFailure(Failure.FORM_MEDIA_TYPE, f"Got {content_type!r}.")
    return parse_urlencoded(await read_body(request, limit))


def first(form: Form, name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def check_csrf(
    request: Request,
    tokens: CsrfTokens,
    cookie_token: str | None,
    submitted: str | None,
    *,
    browser_vouches: bool = False,
) -> None:
    """A token bound to this browser's id cookie, and an Origin that is ours if sent.

    Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` with a page's
    own form posts; Fetch Metadata (``Sec-Fetch-Site: same-origin``) still says where
    the post came from, so that pair counts as ours.

    ``browser_vouches``: the browser's own word that the post came from our site
    (``Sec-Fetch-Site: same-origin``, or an ``Origin`` equal to ours) is enough, without a
    token: the approach of Go's ``CrossOriginProtection``. A page cannot make a browser
    send either for a cross-site post, so this is what lets the banner's form leave the
    token out, and the page it is on be the same for every reader (a shared cache may
    keep it). A post that carries neither header (an old browser, a script) still needs
    the token.
    """
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin == "null" and fetch_site == "same-origin":
        origin = None
    host = request.headers.get("host")
    if not same_origin(origin, host, request.url.scheme):
        raise RequestFailure(Failure.CROSS_ORIGIN)
    # Browsers that send Fetch Metadata say where a post came from even without an
    # Origin: only our own pages (or the reader typing, "none") may post.
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise RequestFailure(Failure.CROSS_ORIGIN)
    if browser_vouches and (fetch_site == "same-origin" or origin is not None):
        return  # origin, when present, was checked equal to ours just above
    if not tokens.is_valid(cookie_token):
        raise RequestFailure(Failure.CSRF_COOKIE_MISSING)
    if not tokens.matches(cookie_token, submitted or None):
        raise RequestFailure(Failure.CSRF_TOKEN_MISMATCH)


def private_headers() -> dict[str, str]:
    """Answers that differ per reader: no shared cache may keep or reuse them."""
    return {"cache-control": "private, no-store", "vary": "Cookie"}


def page_headers(frame_ancestors: Sequence[str] = DEFAULT_FRAME_ANCESTORS) -> dict[str, str]:
    """An HTML page of ours: private, under the strict CSP, framed only by
    ``frame_ancestors`` (by nobody unless configured). Computed once at start-up:
    use ``PageKit.page_headers``."""
    return {**private_headers(), **page_security_headers(frame_ancestors)}


def see_other(url: str) -> Response:
    """303: the browser follows with a GET, so a reload never re-posts the form."""
    response = RedirectResponse(url, status_code=303)
    response.headers.update(private_headers())
    return response
