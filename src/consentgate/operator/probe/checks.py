"""Judging one answer against the registered reader's copy: is any hidden text in it,
does it give the full copy's length away, could it be read at all."""

from __future__ import annotations

import re

from consentgate.operator.probe.channels import Channel
from consentgate.operator.probe.client import Answer
from consentgate.operator.probe.decoding import answer_text, is_json
from consentgate.operator.probe.errors import Undecodable
from consentgate.operator.probe.results import Reference, Verdict
from consentgate.operator.probe.settings import LENGTH_SLACK
from consentgate.operator.probe.text import searchable_text

_CONTENT_RANGE = re.compile(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", re.IGNORECASE)


def declared_length(answer: Answer) -> int | None:
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


def judge_answer(
    answer: Answer, ref: Reference, channel: Channel | None, cut_length: int | None, limit: int
) -> tuple[Verdict, str]:
    """One answer's verdict and its note: a leak (a 304 that validates the registered
    copy, hidden text in any place the answer carries text, a length that gives the full
    copy away), unchecked (undecodable, or cut at ``limit``), or ok."""
    registered_etag = ref.answer.header("etag")
    revalidated = answer.status == 304 and registered_etag is not None
    if channel is not None and channel.sends_registered_etag and revalidated:
        return Verdict.LEAK, "304: the registered reader's ETag is current for this reader"
    try:
        text = answer_text(answer, limit)
    except Undecodable as exc:
        return Verdict.UNCHECKED, str(exc)
    haystack = searchable_text(text, as_json=is_json(answer.header("content-type")))
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
        declared = declared_length(answer)
        if declared is not None and declared > cut_length + slack:
            return (
                Verdict.LEAK,
                f"the answer claims {declared} bytes, the cut page has {cut_length}: the "
                "full length shows",
            )
    if answer.truncated:
        return Verdict.UNCHECKED, f"body over {limit} bytes: only the start was read"
    return Verdict.OK, ""
