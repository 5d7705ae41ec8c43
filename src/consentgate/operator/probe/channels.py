"""The channels: every way, after the plain ``GET``, an anonymous reader asks for an
article."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consentgate.operator.probe.settings import (
    BINGBOT_IP,
    BINGBOT_UA,
    GOOGLE_REFERER,
    GOOGLEBOT_IP,
    GOOGLEBOT_UA,
)


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
