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
"""

from __future__ import annotations

import codecs
import enum
import getpass
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from importlib import import_module
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from consentgate.config import Config, CookieNames

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

# -- defaults (the CLI shows these) ----------------------------------------------------------
DEFAULT_TIMEOUT = 10.0  # seconds, per request: connect, each read, and the whole body
DEFAULT_MAX_REQUESTS = 1000  # one article costs about 4 x 34 requests plus the spending
DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # per answer body, decoded too: a bomb stays small
DEFAULT_PREFIX = Config().prefix
DEFAULT_COOKIES = CookieNames()
PASSWORD_ENV = "CONSENTGATE_PROBE_PASSWORD"  # noqa: S105 - a variable name, not a secret

# A leak is a shared run of at least MIN_RUN characters. Windows of WINDOW characters
# taken every STRIDE characters catch every run of WINDOW + STRIDE - 1 or more: any
# such run contains one window whole.
WINDOW = 32
STRIDE = 8
MIN_RUN = WINDOW + STRIDE - 1
# A HEAD length or Content-Range total may drift a little between two answers of the
# same page (a token, a date); the hidden text is longer than that.
LENGTH_SLACK = 256

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 consentgate-probe"
)
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT_UA = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
GOOGLEBOT_IP = "66.249.66.1"  # inside Google's published Googlebot ranges
BINGBOT_IP = "157.55.39.1"  # inside Bing's published Bingbot ranges
GOOGLE_REFERER = "https://www.google.com/"
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class ProbeError(Exception):
    """A problem that stops the probe: a bad argument, a refused sign-in, no server."""


class Verdict(enum.StrEnum):
    OK = "ok"
    LEAK = "LEAK"
    NOT_WALLED = "NOT WALLED"  # the exhausted reader got the whole article on a GET
    FREE_READ = "free read"  # a reader without a meter got a metered article: allowed
    UNCHECKED = "UNCHECKED"  # an answer the probe could not read (encoding, size)
    ERROR = "ERROR"  # no answer (timeout, connection), or the request cap was reached

    @property
    def fails(self) -> bool:
        return self in (Verdict.LEAK, Verdict.NOT_WALLED)

    @property
    def incomplete(self) -> bool:
        return self in (Verdict.UNCHECKED, Verdict.ERROR)


class State(enum.StrEnum):
    """Which anonymous reader asks."""

    EXHAUSTED = "exhausted"  # read the other articles first; must be cut
    TAMPERED = "tampered"  # a meter cookie whose signature does not verify; must be cut
    DROPPED = "dropped"  # the exhausted reader's cookies, without the meter
    FRESH = "fresh"  # no cookies at all

    @property
    def must_be_cut(self) -> bool:
        return self in (State.EXHAUSTED, State.TAMPERED)


# -- channels ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """What a channel needs to know about the article it asks for."""

    path: str
    registered_length: int  # bytes of the registered reader's (identity) body
    cut_length: int  # bytes of this reader's plain GET
    etag: str | None  # the registered reader's ETag
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    method: str = "GET"
    path: Callable[[str], str] = lambda p: p
    headers: Callable[[Target], dict[str, str]] = lambda t: {}
    # A 304 to this request would tell an anonymous cache the full copy is current.
    sends_registered_etag: bool = False


def _with_query(path: str, extra: str) -> str:
    return path + ("&" if "?" in path else "?") + extra


def _before_query(path: str, change: Callable[[str], str]) -> str:
    base, sep, query = path.partition("?")
    return change(base) + sep + query


def _last_segment(path: str, change: Callable[[str], str]) -> str:
    def apply(base: str) -> str:
        head, slash, last = base.rstrip("/").rpartition("/")
        return head + slash + change(last) if last else base

    return _before_query(path, apply)


def _percent_first(segment: str) -> str:
    return f"%{ord(segment[0]):02X}{segment[1:]}" if segment[0].isascii() else segment


def _dot_segment(path: str) -> str:
    return _last_segment(path, lambda last: "./" + last)


def _dot_dot(path: str) -> str:
    def apply(base: str) -> str:
        first = base.lstrip("/").split("/", 1)[0]
        return f"/{first}/..{base}" if first else base

    return _before_query(path, apply)


def _tail(t: Target) -> dict[str, str]:
    return {"range": f"bytes=-{max(1, t.registered_length // 2)}"}


def _past_cut(t: Target) -> dict[str, str]:
    # The bytes a full copy has beyond the end of the cut one.
    return {"range": f"bytes={max(0, t.cut_length - 1)}-"}


def _multi(t: Target) -> dict[str, str]:
    middle = max(100, t.registered_length // 3)
    return {"range": f"bytes=0-99,{middle}-{middle + 2047},-{max(1, t.registered_length // 4)}"}


def _inm(t: Target) -> dict[str, str]:
    return {"if-none-match": t.etag or "*"}


def _ims(t: Target) -> dict[str, str]:
    return {"if-modified-since": t.last_modified or "Thu, 01 Jan 1970 00:00:00 GMT"}


def _crawler(agent: str, ip: str) -> Callable[[Target], dict[str, str]]:
    def headers(t: Target) -> dict[str, str]:
        return {
            "user-agent": agent,
            "referer": GOOGLE_REFERER,
            "x-forwarded-for": ip,
            "forwarded": f"for={ip};proto=https",
            "x-real-ip": ip,
        }

    return headers


def _fixed(values: dict[str, str]) -> Callable[[Target], dict[str, str]]:
    return lambda t: dict(values)


CHANNELS: tuple[Channel, ...] = (
    Channel("HEAD", method="HEAD"),
    Channel("range 0-", headers=_fixed({"range": "bytes=0-"})),
    Channel("range tail", headers=_tail),
    Channel("range past cut", headers=_past_cut),
    Channel("range multi", headers=_multi),
    Channel("if-none-match", headers=_inm, sends_registered_etag=True),
    Channel("if-modified-since", headers=_ims),
    Channel("if-range", headers=lambda t: {"range": "bytes=0-", "if-range": t.etag or "x"}),
    Channel("encoding identity", headers=_fixed({"accept-encoding": "identity"})),
    Channel("encoding gzip", headers=_fixed({"accept-encoding": "gzip"})),
    Channel("encoding deflate", headers=_fixed({"accept-encoding": "deflate"})),
    Channel("encoding br", headers=_fixed({"accept-encoding": "br"})),
    Channel("encoding all", headers=_fixed({"accept-encoding": "gzip, deflate, br, zstd"})),
    Channel("accept json", headers=_fixed({"accept": "application/json"})),
    Channel("accept */*", headers=_fixed({"accept": "*/*"})),
    Channel("accept text/plain", headers=_fixed({"accept": "text/plain"})),
    Channel("accept ld+json", headers=_fixed({"accept": "application/ld+json"})),
    Channel("accept none", headers=_fixed({"accept": ""})),
    Channel("path trailing /", path=lambda p: _before_query(p, lambda b: b.rstrip("/") + "/")),
    Channel("path upper case", path=lambda p: _before_query(p, str.upper)),
    Channel("path //", path=lambda p: _before_query(p, lambda b: "/" + b)),
    Channel("path inner //", path=lambda p: _last_segment(p, lambda s: "/" + s)),
    Channel("path ;param", path=lambda p: _before_query(p, lambda b: b + ";jsessionid=probe")),
    Channel("path ?query", path=lambda p: _with_query(p, "cg_probe=1")),
    Channel("path ?amp", path=lambda p: _with_query(p, "amp=1&output=amp")),
    Channel("path %-encoded", path=lambda p: _last_segment(p, _percent_first)),
    Channel("path /./", path=_dot_segment),
    Channel("path /../", path=_dot_dot),
    Channel("ua googlebot", headers=_fixed({"user-agent": GOOGLEBOT_UA})),
    Channel("ua bingbot", headers=_fixed({"user-agent": BINGBOT_UA})),
    Channel("googlebot spoofed", headers=_crawler(GOOGLEBOT_UA, GOOGLEBOT_IP)),
    Channel("bingbot spoofed", headers=_crawler(BINGBOT_UA, BINGBOT_IP)),
    Channel("referer google", headers=_fixed({"referer": GOOGLE_REFERER})),
    Channel(
        "x-forwarded-for",
        headers=_fixed({"x-forwarded-for": GOOGLEBOT_IP, "forwarded": f"for={GOOGLEBOT_IP}"}),
    ),
)
"""Every channel after the plain ``GET`` (which each state asks first)."""

# -- text -------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "body",
        "html",
        "head",
        "title",
        "option",
        "select",
        "textarea",
    }
)
_RAW_TEXT = frozenset({"script", "style"})


def normalize(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


class _Extractor(HTMLParser):
    """Text blocks (split at block elements and ``<br>``) and everything else a reader
    could read the text from: attribute values, comments, script and style text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.other: list[str] = []
        self.scripts: list[tuple[str, str]] = []  # (type attribute, text)
        self._text: list[str] = []
        self._raw: str | None = None
        self._raw_type = ""
        self._raw_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.other.extend(value for _, value in attrs if value)
        if tag in _RAW_TEXT:
            self._flush()
            self._raw = tag
            self._raw_type = next((v or "" for k, v in attrs if k == "type"), "")
            self._raw_text = []
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._raw is not None and tag == self._raw:
            self.scripts.append((self._raw_type, "".join(self._raw_text)))
            self._raw = None
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        (self._raw_text if self._raw is not None else self._text).append(data)

    def handle_comment(self, data: str) -> None:
        self.other.append(data)

    def _flush(self) -> None:
        text = normalize("".join(self._text))
        if text:
            self.blocks.append(text)
        self._text = []

    def finish(self) -> _Extractor:
        self.close()
        if self._raw is not None:  # an unclosed script: its text is still in the answer
            self.scripts.append((self._raw_type, "".join(self._raw_text)))
            self._raw = None
        self._flush()
        return self


def _extract(markup: str) -> _Extractor:
    parser = _Extractor()
    parser.feed(markup)
    return parser.finish()


def extract_blocks(markup: str) -> list[str]:
    """The page's text blocks, whitespace collapsed (scripts and styles left out)."""
    return _extract(markup).blocks


def _json_strings(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 100:  # deeper than any real document; json itself recursed this far
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(str(key))
            _json_strings(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, out, depth + 1)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def searchable_text(markup: str, *, as_json: bool = False) -> str:
    """Every place an answer could carry the text, each normalized, one per line.

    The raw text (for text/plain and anything the parser misses), the HTML text blocks,
    attribute values, comments, scripts, and the strings of any JSON body or
    JSON(-LD) script, themselves read as HTML (an ``articleBody`` may hold markup).
    """
    parts = [normalize(markup)]
    page = _extract(markup)
    parts.append(" ".join(page.blocks))
    parts.extend(normalize(value) for value in page.other)
    strings: list[str] = []
    candidates = [text for _, text in page.scripts]
    if as_json or markup.lstrip()[:1] in ("{", "["):
        candidates.append(markup)
    for text in candidates:
        parts.append(normalize(text))
        parsed = _parse_json(text.strip())
        if parsed is not None:
            _json_strings(parsed, strings)
    for value in strings:
        inner = _extract(value)
        parts.append(normalize(value))
        parts.append(" ".join(inner.blocks))
        parts.extend(normalize(v) for v in inner.other)
    return "\n".join(part for part in parts if part)


def _windows(block: str) -> Iterator[str]:
    if len(block) < WINDOW:
        return
    last = len(block) - WINDOW
    yield from (block[i : i + WINDOW] for i in range(0, last + 1, STRIDE))
    if last % STRIDE:
        yield block[last:]


def secret_windows(hidden: Iterable[str], public: str) -> list[str]:
    """The windows of the hidden blocks that the public answer does not already show."""
    seen: dict[str, None] = {}
    for block in hidden:
        for window in _windows(block):
            if window not in public:
                seen.setdefault(window)
    return list(seen)


# -- HTTP -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes  # as received (still content-encoded)
    truncated: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


class RequestCapReached(ProbeError):
    """The run asked as many times as ``--max-requests`` allows."""


class ExchangeFailed(ProbeError):
    """One request got no (complete) answer: a timeout, a reset, bad HTTP. The probe
    notes it and goes on; a refused connection (the site is down) stops the run."""


class Jar:
    """One client's cookies for one site (the probe talks to one origin)."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self.cookies = dict(cookies or {})

    def copy(self) -> Jar:
        return Jar(self.cookies)

    def without(self, name: str) -> Jar:
        return Jar({k: v for k, v in self.cookies.items() if k != name})

    def header(self) -> str | None:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None

    def update(self, answer: Answer) -> None:
        for line in answer.all("set-cookie"):
            pair, *attributes = line.split(";")
            name, sep, value = pair.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            if _expired(attributes):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value.strip()


def _expired(attributes: Sequence[str]) -> bool:
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "max-age":
            try:
                return int(value) <= 0
            except ValueError:
                continue
        if key == "expires":
            try:
                return parsedate_to_datetime(value).timestamp() < time.time()
            except (TypeError, ValueError):
                continue
    return False


class Client:
    """Sequential requests to one origin, each on a new connection, each bounded."""

    def __init__(self, base_url: str, *, timeout: float, max_requests: int, max_bytes: int):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ProbeError(f"bad port in {base_url!r}") from None
        self.base_path = parts.path.rstrip("/")
        default_port = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"{self.scheme}://{host}" + (
            f":{self.port}" if self.port != default_port else ""
        )
        self.timeout = timeout
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.count = 0

    def target(self, path: str) -> str:
        return self.base_path + path

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        jar: Jar | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One exchange; :class:`ProbeError` on no answer (timeout, refused, reset)."""
        if self.count >= self.max_requests:
            raise RequestCapReached(f"the request cap ({self.max_requests}) was reached")
        self.count += 1
        started = time.monotonic()
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            # skip_accept_encoding: the channel, not http.client, chooses the encoding.
            connection.putrequest(method, self.target(path), skip_accept_encoding=True)
            sent = {"user-agent": BROWSER_UA, "accept": HTML_ACCEPT, "accept-encoding": "identity"}
            sent.update(headers)
            cookie = jar.header() if jar is not None else None
            if cookie:
                sent["cookie"] = cookie
            if body is not None:
                sent["content-length"] = str(len(body))
            for name, value in sent.items():
                if value:
                    connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            received = bytearray()
            truncated = False
            while chunk := response.read(64 * 1024):
                received += chunk
                if len(received) > self.max_bytes:
                    truncated = True
                    break
                if time.monotonic() - started > self.timeout:
                    raise TimeoutError(f"the body took longer than {self.timeout:g}s")
            answer = Answer(
                status=response.status,
                headers=[(k.lower(), v) for k, v in response.getheaders()],
                body=bytes(received[: self.max_bytes]),
                truncated=truncated,
            )
        except (OSError, http.client.HTTPException) as exc:
            what = _describe(exc, f"{method} {self.origin}{self.target(path)}")
            if isinstance(exc, ConnectionRefusedError | socket.gaierror | ssl.SSLError):
                raise ProbeError(what) from None
            raise ExchangeFailed(what) from None
        finally:
            connection.close()
        if jar is not None:
            jar.update(answer)
        return answer


def _describe(exc: BaseException, what: str) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"{what}: no answer in time ({exc or 'timeout'})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{what}: connection refused (is the site running?)"
    if isinstance(exc, socket.gaierror):
        return f"{what}: unknown host ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"{what}: TLS failed ({exc.reason or exc})"
    return f"{what}: {type(exc).__name__}: {exc}"


# -- decoding ---------------------------------------------------------------------------------


class Undecodable(ProbeError):
    """A body the probe cannot undo the content coding of (or that decodes too large)."""


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise Undecodable(f"decodes to more than {limit} bytes")
    return out


def _decode_one(coding: str, data: bytes, limit: int) -> bytes:
    try:
        if coding in ("gzip", "x-gzip"):
            return _inflate(data, 16 + zlib.MAX_WBITS, limit)
        if coding == "deflate":  # zlib-wrapped as the RFC says, raw as some servers send
            try:
                return _inflate(data, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(data, -zlib.MAX_WBITS, limit)
    except zlib.error as exc:
        raise Undecodable(f"bad {coding} data ({exc})") from None
    if coding == "br":
        module = _optional("brotli")
        if module is None:
            raise Undecodable("br: install the brotli package to read it")
        try:
            return bytes(module.decompress(data))
        except Exception as exc:  # brotli's own error type varies by build
            raise Undecodable(f"bad br data ({exc})") from None
    if coding == "zstd":
        module = _optional("compression.zstd") or _optional("zstandard")
        if module is None:
            raise Undecodable("zstd: no zstd decoder in this Python")
        try:
            return bytes(module.decompress(data))
        except Exception as exc:
            raise Undecodable(f"bad zstd data ({exc})") from None
    raise Undecodable(f"unknown content coding {coding!r}")


def _optional(name: str) -> Any:
    try:
        return import_module(name)
    except ImportError:
        return None


def decode_body(answer: Answer, limit: int) -> bytes:
    """The body with its content codings undone, last applied first (RFC 9110 8.4)."""
    codings = [c.strip().lower() for c in (answer.header("content-encoding") or "").split(",")]
    data = answer.body
    for coding in reversed([c for c in codings if c and c != "identity"]):
        data = _decode_one(coding, data, limit)
    return data


def _charset(content_type: str | None) -> str:
    for parameter in (content_type or "").split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def answer_text(answer: Answer, limit: int) -> str:
    data = decode_body(answer, limit)
    return data.decode(_charset(answer.header("content-type")), errors="replace")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


# -- the probe --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    base_url: str
    paths: tuple[str, ...]
    email: str | None = None
    password: str | None = None
    session_cookie: str | None = None  # "NAME=VALUE" or a bare value of the session cookie
    spend: tuple[str, ...] = ()
    prefix: str = DEFAULT_PREFIX
    meter_cookie: str = DEFAULT_COOKIES.meter
    session_cookie_name: str = DEFAULT_COOKIES.session
    timeout: float = DEFAULT_TIMEOUT
    max_requests: int = DEFAULT_MAX_REQUESTS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    state: str
    channel: str
    status: int | None
    size: int | None  # body bytes as received
    verdict: Verdict
    note: str = ""


@dataclass(slots=True)
class ProbeReport:
    rows: list[Row] = field(default_factory=list)
    requests: int = 0
    # path -> (text blocks of the registered reader's copy, how many the cut hides)
    articles: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def leaks(self) -> list[Row]:
        return [row for row in self.rows if row.verdict.fails]

    @property
    def incomplete(self) -> list[Row]:
        return [row for row in self.rows if row.verdict.incomplete]

    @property
    def exit_status(self) -> int:
        if self.leaks:
            return 1
        return 2 if self.incomplete else 0


@dataclass(frozen=True, slots=True)
class Reference:
    """What the registered reader got, and what of it the exhausted reader must not."""

    answer: Answer
    secrets: list[str]
    hidden_blocks: list[str]
    hidden_bytes: int


def _path(value: str, client: Client) -> str:
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if f"{parts.scheme}://{parts.netloc}" != client.origin:
            raise ProbeError(f"{value} is not on {client.origin}")
        value = parts.path + (f"?{parts.query}" if parts.query else "")
        if client.base_path and value.startswith(client.base_path):
            value = value[len(client.base_path) :]
    if not value.startswith("/"):
        raise ProbeError(f"an article path starts with '/': {value!r}")
    return value


class _LoginForm(HTMLParser):
    def __init__(self, action_suffix: str) -> None:
        super().__init__(convert_charrefs=True)
        self.suffix = action_suffix
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.found:
            action = attributes.get("action", "").split("?")[0]
            self.inside = action.endswith(self.suffix)
            self.found = self.inside
        elif self.inside and tag == "input" and attributes.get("type") == "hidden":
            self.fields.update(
                {attributes["name"]: attributes.get("value", "")} if attributes.get("name") else {}
            )

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def sign_in(client: Client, settings: ProbeSettings) -> Jar:
    """A registered reader's cookies: the operator's session cookie, or a sign-in
    through the site's own form (GET for the CSRF cookie and token, then POST)."""
    jar = Jar()
    if settings.session_cookie:
        name, sep, value = settings.session_cookie.partition("=")
        if sep:
            jar.cookies[name.strip()] = value.strip()
        else:
            jar.cookies[settings.session_cookie_name] = settings.session_cookie.strip()
        return jar
    if not settings.email or settings.password is None:
        raise ProbeError("give --email (with a password) or --session-cookie")
    login = f"{settings.prefix}/login"
    page = client.request("GET", login, {}, jar)
    if page.status != 200:
        raise ProbeError(f"GET {login} answered {page.status}, not the sign-in form")
    form = _LoginForm(login)
    form.feed(answer_text(page, client.max_bytes))
    form.close()
    if not form.found:
        raise ProbeError(f"GET {login} has no form posting to {login} (is --prefix right?)")
    fields = {**form.fields, "email": settings.email, "password": settings.password}
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": client.origin}
    answer = client.request("POST", login, headers, jar, body=urlencode(fields).encode())
    if answer.status == 400:
        raise ProbeError(f"the site refused the sign-in of {settings.email} (wrong password?)")
    if answer.status == 429:
        raise ProbeError("the site rate-limits sign-ins from here; try again later")
    if answer.status not in (302, 303):
        raise ProbeError(f"POST {login} answered {answer.status}, not a redirect after sign-in")
    if settings.session_cookie_name not in jar.cookies:
        raise ProbeError(
            f"the sign-in set no {settings.session_cookie_name!r} cookie "
            "(see --session-cookie-name)"
        )
    return jar


def _tamper(value: str) -> str:
    """The cookie with one signature character changed (one that carries bits: the last
    base64 character may only hold padding)."""
    head, dot, signature = value.rpartition(".")
    text = signature if dot else value
    if len(text) < 2:
        return value + "x"
    index = len(text) // 2
    swapped = "A" if text[index] != "A" else "B"
    changed = text[:index] + swapped + text[index + 1 :]
    return head + dot + changed if dot else changed


class Prober:
    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.client = Client(
            settings.base_url,
            timeout=settings.timeout,
            max_requests=settings.max_requests,
            max_bytes=settings.max_bytes,
        )
        self.report = ProbeReport()

    def run(self) -> ProbeReport:
        client = self.client
        paths = [_path(p, client) for p in self.settings.paths]
        spend = [_path(p, client) for p in self.settings.spend]
        if not paths:
            raise ProbeError("give at least one article path")
        registered = sign_in(client, self.settings)
        for path in paths:
            others = [p for p in dict.fromkeys(paths + spend) if p != path]
            try:
                self._article(path, registered, others)
            except RequestCapReached as exc:
                self._row(path, "-", "-", None, Verdict.ERROR, f"{exc}; stopped (--max-requests)")
                break
        self.report.requests = client.count
        return self.report

    def _row(
        self,
        path: str,
        state: str,
        channel: str,
        answer: Answer | None,
        verdict: Verdict,
        note: str = "",
    ) -> None:
        self.report.rows.append(
            Row(
                path,
                state,
                channel,
                answer.status if answer else None,
                len(answer.body) if answer else None,
                verdict,
                note,
            )
        )

    def _get(self, path: str, jar: Jar | None, headers: dict[str, str] | None = None) -> Answer:
        return self.client.request("GET", path, headers or {}, jar)

    def _article(self, path: str, registered: Jar, others: list[str]) -> None:
        limit = self.client.max_bytes
        try:
            full = self._get(path, registered.copy())
        except ExchangeFailed as exc:
            self._row(path, "registered", "GET", None, Verdict.ERROR, str(exc))
            return
        if full.status != 200:
            self._row(path, "registered", "GET", full, Verdict.ERROR, "not 200: not checked")
            return
        try:
            reference_text = answer_text(full, limit)
        except Undecodable as exc:
            self._row(path, "registered", "GET", full, Verdict.UNCHECKED, str(exc))
            return
        blocks = [b for b in extract_blocks(reference_text) if len(b) >= WINDOW]

        # The exhausted reader: every other article first, then this one.
        spent = Jar()
        early_meter: str | None = None
        for other in others:
            try:
                self._get(other, spent)
            except ExchangeFailed:
                continue  # a spending read that fails only spends less
            if early_meter is None:
                early_meter = spent.cookies.get(self.settings.meter_cookie)
        try:
            cut = self._get(path, spent)
        except ExchangeFailed as exc:
            self._row(path, State.EXHAUSTED, "GET", None, Verdict.ERROR, str(exc))
            return
        try:
            public = searchable_text(answer_text(cut, limit))
        except Undecodable as exc:
            self._row(path, State.EXHAUSTED, "GET", cut, Verdict.UNCHECKED, str(exc))
            return
        hidden = [b for b in blocks if b not in public]
        secrets = secret_windows(hidden, public)
        if not secrets:
            spent_note = f"after {len(others)} other articles" if others else "with no reads"
            self._row(
                path,
                State.EXHAUSTED,
                "GET",
                cut,
                Verdict.NOT_WALLED,
                f"an anonymous reader ({spent_note}) got all the registered reader got; a "
                "free article, a meter larger than the reads spent (--spend), or no sign-in",
            )
            return
        reference = Reference(full, secrets, hidden, sum(len(b.encode()) for b in hidden))
        self.report.articles[path] = (len(blocks), len(hidden))
        meter = spent.cookies.get(self.settings.meter_cookie)
        jars: list[tuple[State, Jar | None, Answer | None]] = [(State.EXHAUSTED, spent, cut)]
        if early_meter or meter:
            tampered = spent.copy()
            tampered.cookies[self.settings.meter_cookie] = _tamper(early_meter or meter or "")
            jars.append((State.TAMPERED, tampered, None))
        if spent.cookies:
            jars.append((State.DROPPED, spent.without(self.settings.meter_cookie), None))
        jars.append((State.FRESH, None, None))
        for state, jar, first in jars:
            self._state(path, state, jar, first, reference)

    def _state(
        self, path: str, state: State, jar: Jar | None, first: Answer | None, ref: Reference
    ) -> None:
        frozen = jar.cookies if jar is not None else None

        def fresh_jar() -> Jar | None:
            # Each request starts from the same cookies: the reader stays in its state.
            return Jar(frozen) if frozen is not None else None

        try:
            plain = first or self._get(path, fresh_jar())
        except ExchangeFailed as exc:
            self._row(path, state, "GET", None, Verdict.ERROR, str(exc))
            return
        verdict, note = self.judge(plain, ref, None, None)
        if verdict is Verdict.LEAK and not state.must_be_cut:
            self._row(path, state, "GET", plain, Verdict.FREE_READ, "metered: not judged")
            return
        if verdict is Verdict.LEAK and state is State.TAMPERED:
            note = "a meter cookie with a bad signature gave a free read; " + note
        self._row(path, state, "GET", plain, verdict, note)
        if verdict is not Verdict.OK:
            return  # the channels would only repeat what the plain GET shows
        cut_length = len(_decoded_or_raw(plain, self.client.max_bytes))
        target = Target(
            path=path,
            registered_length=len(_decoded_or_raw(ref.answer, self.client.max_bytes)),
            cut_length=cut_length,
            etag=ref.answer.header("etag"),
            last_modified=ref.answer.header("last-modified"),
        )
        for channel in CHANNELS:
            try:
                answer = self.client.request(
                    channel.method, channel.path(path), channel.headers(target), fresh_jar()
                )
            except ExchangeFailed as exc:
                self._row(path, state, channel.name, None, Verdict.ERROR, str(exc))
                continue
            verdict, note = self.judge(answer, ref, channel, cut_length)
            self._row(path, state, channel.name, answer, verdict, note)

    def judge(
        self, answer: Answer, ref: Reference, channel: Channel | None, cut_length: int | None
    ) -> tuple[Verdict, str]:
        limit = self.client.max_bytes
        registered_etag = ref.answer.header("etag")
        revalidated = answer.status == 304 and registered_etag is not None
        if channel is not None and channel.sends_registered_etag and revalidated:
            return Verdict.LEAK, "304: the registered reader's ETag is current for this reader"
        try:
            text = answer_text(answer, limit)
        except Undecodable as exc:
            return Verdict.UNCHECKED, str(exc)
        haystack = searchable_text(text, as_json=_is_json(answer.header("content-type")))
        found = [w for w in ref.secrets if w in haystack]
        if found:
            blocks = sum(1 for b in ref.hidden_blocks if any(w in b for w in found))
            sample = found[0]
            return (
                Verdict.LEAK,
                f"{blocks} of {len(ref.hidden_blocks)} hidden blocks show, e.g. {sample!r}",
            )
        slack = min(LENGTH_SLACK, max(1, ref.hidden_bytes // 2))
        if cut_length is not None:
            declared = _declared_length(answer)
            if declared is not None and declared > cut_length + slack:
                return (
                    Verdict.LEAK,
                    f"the answer claims {declared} bytes, the cut page has {cut_length}: the "
                    "full length shows",
                )
        if answer.truncated:
            return Verdict.UNCHECKED, f"body over {limit} bytes: only the start was read"
        return Verdict.OK, ""


def _decoded_or_raw(answer: Answer, limit: int) -> bytes:
    try:
        return decode_body(answer, limit)
    except Undecodable:
        return answer.body


_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", re.IGNORECASE)


def _declared_length(answer: Answer) -> int | None:
    """What the answer says about the full representation's length, where it says it:
    Content-Length of a HEAD (or of a body not sent) and a Content-Range total."""
    content_range = answer.header("content-range")
    if content_range:
        match = _CONTENT_RANGE.match(content_range.strip())
        if match:
            return int(match.group(1))
    length = answer.header("content-length")
    if length is not None and length.strip().isdigit() and not answer.body:
        return int(length.strip())
    return None


def run_probe(settings: ProbeSettings) -> ProbeReport:
    """Probe every path; :class:`ProbeError` for problems that stop it before it starts."""
    return Prober(settings).run()


# -- output and the command line ---------------------------------------------------------------

_COLUMNS = ("state", "channel", "status", "bytes", "verdict")


def table_lines(report: ProbeReport, *, problems_only: bool = False) -> list[str]:
    lines: list[str] = []
    widths = (9, 18, 6, 8, 10)
    current = None
    for row in report.rows:
        if problems_only and row.verdict is Verdict.OK:
            continue
        if row.path != current:
            current = row.path
            if lines:
                lines.append("")
            known = report.articles.get(row.path)
            lines.append(
                row.path
                if known is None
                else f"{row.path}  (registered reader: {known[0]} text blocks, "
                f"{known[1]} hidden from the exhausted reader)"
            )
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))
            )
        cells = (
            row.state,
            row.channel,
            "-" if row.status is None else str(row.status),
            "-" if row.size is None else str(row.size),
            row.verdict.value,
        )
        line = "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        lines.append((line + "  " + row.note).rstrip() if row.note else line.rstrip())
    return lines


def summary_line(report: ProbeReport) -> str:
    leaks, incomplete = report.leaks, report.incomplete
    channels = sorted({f"{r.state} {r.channel}" for r in leaks})
    if leaks:
        head = f"LEAK: {len(leaks)} answer(s) carry walled text: " + ", ".join(channels[:12])
        if len(channels) > 12:
            head += f", … and {len(channels) - 12} more"
    elif incomplete:
        head = f"no leak found, but {len(incomplete)} answer(s) could not be checked"
    else:
        head = "no leak: every channel answered the anonymous readers with the cut text only"
    return f"{head} ({report.requests} requests)"


def add_arguments(parser: Any) -> None:
    """The ``probe`` subcommand's options (``parser`` is an argparse parser)."""
    parser.add_argument("base_url", metavar="BASE_URL", help="e.g. https://news.example")
    parser.add_argument(
        "paths", metavar="PATH", nargs="+", help="walled article paths, e.g. /articles/x"
    )
    who = parser.add_argument_group("the registered reader")
    who.add_argument("--email", help="sign in through the site's own form as this reader")
    who.add_argument(
        "--password",
        help=f"the reader's password (better: set {PASSWORD_ENV}; asked for on a terminal)",
    )
    who.add_argument(
        "--session-cookie",
        metavar="[NAME=]VALUE",
        help="a signed-in reader's session cookie instead of a sign-in",
    )
    who.add_argument(
        "--session-cookie-name",
        default=DEFAULT_COOKIES.session,
        help=f"default {DEFAULT_COOKIES.session}",
    )
    parser.add_argument(
        "--spend",
        metavar="PATH",
        action="append",
        default=[],
        help="another metered article to read first so the meter is used up (repeat it)",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"default {DEFAULT_PREFIX}")
    parser.add_argument(
        "--meter-cookie", default=DEFAULT_COOKIES.meter, help=f"default {DEFAULT_COOKIES.meter}"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        help=f"seconds per request (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-requests",
        type=_positive(int),
        default=DEFAULT_MAX_REQUESTS,
        help=f"stop after this many requests (default {DEFAULT_MAX_REQUESTS})",
    )
    parser.add_argument(
        "--problems-only", action="store_true", help="list only the rows that are not ok"
    )


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    import argparse

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
        return number

    return parse


def _password(args: Any) -> str | None:
    if args.password is not None:
        return str(args.password)
    if os.environ.get(PASSWORD_ENV) is not None:
        return os.environ[PASSWORD_ENV]
    if args.email and sys.stdin.isatty():
        return getpass.getpass(f"password for {args.email}: ")
    return None


def run(args: Any, out: TextIO | None = None) -> int:
    """The ``probe`` command: the table on stdout, problems on stderr, the exit status."""
    stdout = out or sys.stdout
    if args.session_cookie and args.email:
        print("probe: give --email or --session-cookie, not both", file=sys.stderr)
        return 2
    try:
        settings = ProbeSettings(
            base_url=args.base_url,
            paths=tuple(args.paths),
            email=args.email,
            password=_password(args),
            session_cookie=args.session_cookie,
            spend=tuple(args.spend),
            prefix=args.prefix.rstrip("/"),
            meter_cookie=args.meter_cookie,
            session_cookie_name=args.session_cookie_name,
            timeout=args.timeout,
            max_requests=args.max_requests,
        )
        report = run_probe(settings)
    except ProbeError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probe: interrupted", file=sys.stderr)
        return 130
    for line in table_lines(report, problems_only=args.problems_only):
        print(line, file=stdout)
    print(file=stdout)
    print(summary_line(report), file=stdout)
    return report.exit_status
