"""Undoing an answer's content codings, and reading it as text."""

from __future__ import annotations

import codecs
import zlib
from importlib import import_module
from typing import Any

from consentgate.operator.probe.client import Answer
from consentgate.operator.probe.errors import Undecodable


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


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media.endswith("/json") or media.endswith("+json")


def decoded_or_raw(answer: Answer, limit: int) -> bytes:
    try:
        return decode_body(answer, limit)
    except Undecodable:
        return answer.body
