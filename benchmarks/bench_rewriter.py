"""Throughput of the streaming rewriter against parse-edit-serialise baselines, in one run.

    python benchmarks/bench_rewriter.py [--pages DIR] [--repeat N] [--json] [--quick]

Three jobs, each the gate's own operations (``consentgate.pipeline`` / ``consentgate.articles``):

* **banner**: a first visit. The Consent Mode defaults after ``<head>``, gated
  ``script[data-consent]`` / ``iframe[data-consent]`` looked at (nothing granted, so left
  inert), the banner before ``</body>``. Every page.
* **decided**: a reader who accepted everything. The same, with the gated elements turned
  live (``consentgate.pipeline.activation``) and the "Cookie settings" link before ``</body>``.
  Every page.
* **cut**: a walled reader on an article. The decided job plus the wall's operations: JSON-LD
  scrubbed (``consentgate.wall.jsonld``), scripts inside svg/math removed, the article
  container cut after two paragraphs and the CTA inserted. Pages listed in ``manifest.json``
  (it names each page's container).

The baselines do the same edit by parsing the page into a tree, editing it and serialising:
selectolax (lexbor), lxml.html, BeautifulSoup with html.parser and with lxml (each skipped when
not installed). MB/s is input megabytes (10^6 bytes) per second of this process's CPU time,
best of ``--repeat`` runs. **time / selectolax** and **time / lxml** are each row's time divided by
that baseline's time for the same job in the same run: below 1 is faster than the baseline.

Then, for the tokenizer's wanted-names scanner, the tokenizer alone with a handler that does
nothing (every token reported, and wanted names as a rewriter would ask for them); the
pathological inputs through the real rewriter; and the cost of chunking (one piece against
4 KB and 1 KB chunks). Everything is printed as markdown tables ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from consentgate.articles import FOREIGN_SCRIPTS, JSON_LD  # noqa: E402
from consentgate.consent.state import Consent  # noqa: E402
from consentgate.pipeline import CONSENT_MAX_TOKEN_BYTES, GATED_ELEMENTS, activation  # noqa: E402
from consentgate.rewrite import (  # noqa: E402
    InsertHTML,
    Operation,
    RemoveElement,
    RewriteAttributes,
    RewriteError,
    RewriteErrorReason,
    Rewriter,
    TransformText,
    Truncate,
)
from consentgate.rewrite._html import (  # noqa: E402
    FOREIGN_BREAKOUT,
    RAW_TEXT_ELEMENTS,
    SPECIAL_MATHML,
    SPECIAL_SVG,
)
from consentgate.rewrite.tokenizer import ContentModel, EndTag, StartTag, Tokenizer  # noqa: E402
from consentgate.wall.jsonld import accepts_jsonld_script, scrub_jsonld  # noqa: E402

# The snippets have the size and shape of the gate's own (a banner with two forms, the
# settings link, the Consent Mode defaults, the CTA with its stylesheet).
CONSENT_MODE = (
    "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
    "gtag('consent','default',{'ad_storage':'denied','analytics_storage':'denied',"
    "'ad_user_data':'denied','ad_personalization':'denied','functionality_storage':'granted',"
    "'security_storage':'granted','wait_for_update':500});</script>"
)
BANNER = (
    '<div id="cg-banner" role="dialog" aria-labelledby="cg-title" lang="en">'
    + '<h2 id="cg-title">Cookies on The Example Gazette</h2>'
    + "<p>We use cookies to keep you signed in and, if you agree, to measure our audience.</p>"
    + "".join(
        f'<fieldset><label><input type="checkbox" name="c" value="{c}"> {c.title()}</label>'
        f"<p>What {c} cookies do, who sets them and for how long.</p></fieldset>"
        for c in ("preferences", "analytics", "marketing")
    )
    + '<form method="post" action="/consentgate/consent"><input type="hidden" name="csrf" '
    + 'value="'
    + "x" * 86
    + '"><button name="action" value="accept_all">Accept all</button>'
    + '<button name="action" value="reject_all">Reject all</button></form></div>'
)
SETTINGS_LINK = (
    '<p class="cg-control"><a href="/consentgate/settings?next=/a">Cookie settings</a></p>'
)
CTA = (
    '<link rel="stylesheet" href="/consentgate/static/wall.css?v=1">'
    '<aside class="cg-cta"><h2>Continue reading</h2><p>Register at no cost to read on.</p>'
    '<a href="/consentgate/register?next=/a">Register</a> '
    '<a href="/consentgate/login?next=/a">Sign in</a></aside>'
)
GATED_CLASS = "cg-gated"
ALL_GRANTED = Consent(
    granted=frozenset(("preferences", "analytics", "marketing")), decided=True,
    mode="opt-in", gpc=False,
)  # fmt: skip
UNDECIDED = Consent(granted=frozenset(), decided=False, mode="opt-in", gpc=False)

#: CPU time of this process: on a shared machine, other processes barely change it (wall-clock
#: time on a busy 2-core machine swings by a factor of two).
CLOCK = time.process_time

Page = tuple[bytes, str]  # bytes, article selector ("" for the consent jobs)
Job = Callable[[bytes, str], bytes]
JOB_NAMES = ("banner", "decided", "cut")


# -- consentgate -------------------------------------------------------------------------------


def consent_ops(consent: Consent) -> list[Operation]:
    snippet = BANNER if consent.needs_banner else SETTINGS_LINK
    return [
        InsertHTML.after_head_open(CONSENT_MODE),
        RewriteAttributes(GATED_ELEMENTS, activation(consent)),
        InsertHTML.before_body_close(snippet),
    ]


def _scrub_gated(text: str) -> str:
    return scrub_jsonld(text, gated=True, paywalled=True, css_class=GATED_CLASS)


def wall_ops(selector: str) -> list[Operation]:
    return [
        TransformText(JSON_LD, _scrub_gated, accept=accepts_jsonld_script),
        RemoveElement(FOREIGN_SCRIPTS),
        Truncate(selector, CTA, keep_items=2),
    ]


def _rewrite(ops: Sequence[Operation], data: bytes) -> bytes:
    rewriter = Rewriter(ops, content_type="text/html", max_token_bytes=CONSENT_MAX_TOKEN_BYTES)
    try:
        return rewriter.feed(data) + rewriter.close()
    except RewriteError as exc:
        # A walled page that cannot be cut safely: the gate sends the wall page (the echo
        # guard finds a copy of the dropped text once the whole page is read, so the time
        # is that of the whole page). None of the news pages does, with the JSON-LD scrub.
        if exc.reason is not RewriteErrorReason.CUT_TEXT_ECHOED:
            raise
        return b""


def ours() -> dict[str, Job]:
    # The gate keeps each consent class's operations (``consentgate.pipeline`` caches them),
    # so a response reuses the same objects and the rewriter finds their layout by identity;
    # operations made afresh per page would measure working the layout out on every page.
    banner, decided = consent_ops(UNDECIDED), consent_ops(ALL_GRANTED)
    return {
        "banner": lambda data, _s: _rewrite(banner, data),
        "decided": lambda data, _s: _rewrite(decided, data),
        "cut": lambda data, s: _rewrite(decided + wall_ops(s), data),
    }


# -- the same edit on a tree ---------------------------------------------------------------------

_DECIDED_ACTIVATE = activation(ALL_GRANTED)
_UNDECIDED_ACTIVATE = activation(UNDECIDED)


def _activate(consent: Consent, tag: str, attrs: dict[str, str]) -> dict[str, str] | None:
    callback = _DECIDED_ACTIVATE if consent.decided else _UNDECIDED_ACTIVATE
    return callback(tag, attrs)


def _selector_parts(selector: str) -> tuple[str, str, str]:
    match = re.fullmatch(r"(\w+)([#.])(.+)", selector)
    if match is None:
        raise ValueError(f"the manifest's selectors are tag#id or tag.class: {selector!r}")
    tag, kind, value = match.groups()
    return tag, kind, value


def selectolax_jobs() -> dict[str, Job] | str:
    try:
        from selectolax.lexbor import LexborHTMLParser, LexborNode
    except ImportError as exc:
        return f"selectolax unavailable ({exc})"

    def fragment(html: str) -> LexborNode:
        tree = LexborHTMLParser(html)
        node = tree.head.child if tree.head is not None and tree.head.child else None
        if node is None and tree.body is not None:
            node = tree.body.child
        if node is None:
            raise ValueError(html)
        return node

    def consent_edit(tree: LexborHTMLParser, consent: Consent) -> None:
        head = tree.head
        if head is not None:
            if head.child is not None:
                head.child.insert_before(fragment(CONSENT_MODE))
            else:
                head.insert_child(fragment(CONSENT_MODE))
        for node in tree.css("script[data-consent], iframe[data-consent]"):
            attrs = {k: v or "" for k, v in node.attributes.items()}
            live = _activate(consent, node.tag or "", attrs)
            if live is not None:
                for name in attrs:
                    if name not in live:
                        del node.attrs[name]
                for name, value in live.items():
                    node.attrs[name] = value
        if tree.body is not None:
            tree.body.insert_child(fragment(BANNER if consent.needs_banner else SETTINGS_LINK))

    def wall_edit(tree: LexborHTMLParser, selector: str) -> None:
        for node in tree.css("script[type]"):
            attrs = {k: v or "" for k, v in node.attributes.items()}
            if accepts_jsonld_script(attrs):
                text = _scrub_gated(node.text())
                replacement = LexborHTMLParser(f"<script>{text}</script>").head
                if replacement is not None and replacement.child is not None:
                    new = replacement.child
                    for name, value in attrs.items():
                        new.attrs[name] = value
                    node.replace_with(new)
        for node in tree.css("svg script, math script"):
            node.decompose()
        container = tree.css_first(selector)
        if container is None:
            return
        paragraphs = container.css("p")
        if len(paragraphs) > 2:
            # Up from the second paragraph to the container: everything after it goes.
            level: LexborNode | None = paragraphs[1]
            while level is not None and level.mem_id != container.mem_id:
                sibling = level.next
                while sibling is not None:
                    following = sibling.next
                    sibling.decompose()
                    sibling = following
                level = level.parent
            container.insert_child(fragment(CTA))

    def run(data: bytes, selector: str, consent: Consent, cut: bool) -> bytes:
        tree = LexborHTMLParser(data)
        consent_edit(tree, consent)
        if cut:
            wall_edit(tree, selector)
        return (tree.html or "").encode()

    return {
        "banner": lambda d, s: run(d, s, UNDECIDED, False),
        "decided": lambda d, s: run(d, s, ALL_GRANTED, False),
        "cut": lambda d, s: run(d, s, ALL_GRANTED, True),
    }


def lxml_jobs() -> dict[str, Job] | str:
    try:
        import lxml.html  # type: ignore[import-untyped]  # no stubs: a test-only baseline
    except ImportError as exc:
        return f"lxml unavailable ({exc})"

    def consent_edit(doc: Any, consent: Consent) -> None:
        head = doc.find("head")
        if head is not None:
            head.insert(0, lxml.html.fragment_fromstring(CONSENT_MODE))
        for node in doc.xpath("//script[@data-consent] | //iframe[@data-consent]"):
            attrs = dict(node.attrib)
            live = _activate(consent, node.tag, attrs)
            if live is not None:
                node.attrib.clear()
                node.attrib.update(live)
        body = doc.find("body")
        if body is not None:
            snippet = BANNER if consent.needs_banner else SETTINGS_LINK
            body.append(lxml.html.fragment_fromstring(snippet))

    def wall_edit(doc: Any, selector: str) -> None:
        for node in doc.xpath("//script[@type]"):
            if accepts_jsonld_script(dict(node.attrib)):
                node.text = _scrub_gated(node.text or "")
        for node in doc.xpath("//svg//script | //math//script"):
            node.drop_tree()
        tag, kind, value = _selector_parts(selector)
        if kind == "#":
            path = f'//{tag}[@id="{value}"]'
        else:
            path = f'//{tag}[contains(concat(" ", normalize-space(@class), " "), " {value} ")]'
        for container in doc.xpath(path)[:1]:
            paragraphs = container.xpath(".//p")
            if len(paragraphs) > 2:
                node = paragraphs[1]
                while node is not container:
                    parent = node.getparent()
                    for sibling in list(node.itersiblings()):
                        parent.remove(sibling)
                    node.tail = None
                    node = parent
                for part in lxml.html.fragments_fromstring(CTA):
                    container.append(part)

    def run(data: bytes, selector: str, consent: Consent, cut: bool) -> bytes:
        doc = lxml.html.document_fromstring(data)
        consent_edit(doc, consent)
        if cut:
            wall_edit(doc, selector)
        return bytes(lxml.html.tostring(doc, encoding="utf-8"))

    return {
        "banner": lambda d, s: run(d, s, UNDECIDED, False),
        "decided": lambda d, s: run(d, s, ALL_GRANTED, False),
        "cut": lambda d, s: run(d, s, ALL_GRANTED, True),
    }


def bs4_jobs(features: str) -> dict[str, Job] | str:
    try:
        from bs4 import BeautifulSoup

        if features == "lxml":
            import lxml  # noqa: F401
    except ImportError as exc:
        return f"BeautifulSoup[{features}] unavailable ({exc})"

    def consent_edit(soup: Any, consent: Consent) -> None:
        if soup.head is not None:
            soup.head.insert(0, BeautifulSoup(CONSENT_MODE, "html.parser"))
        for node in soup.select("script[data-consent], iframe[data-consent]"):
            attrs = {k: " ".join(v) if isinstance(v, list) else v for k, v in node.attrs.items()}
            live = _activate(consent, node.name, attrs)
            if live is not None:
                node.attrs = dict(live)
        if soup.body is not None:
            snippet = BANNER if consent.needs_banner else SETTINGS_LINK
            soup.body.append(BeautifulSoup(snippet, "html.parser"))

    def wall_edit(soup: Any, selector: str) -> None:
        for node in soup.select("script[type]"):
            attrs = {k: " ".join(v) if isinstance(v, list) else v for k, v in node.attrs.items()}
            if accepts_jsonld_script(attrs):
                node.string = _scrub_gated(node.string or "")
        for node in soup.select("svg script, math script"):
            node.decompose()
        container = soup.select_one(selector)
        if container is None:
            return
        paragraphs = container.select("p")
        if len(paragraphs) > 2:
            for element in list(paragraphs[1].find_all_next()):
                if container in element.parents:
                    element.decompose()
            for text in list(paragraphs[1].find_all_next(string=True)):
                if container in text.parents:
                    text.extract()
            container.append(BeautifulSoup(CTA, "html.parser"))

    def run(data: bytes, selector: str, consent: Consent, cut: bool) -> bytes:
        soup = BeautifulSoup(data, features)
        consent_edit(soup, consent)
        if cut:
            wall_edit(soup, selector)
        return bytes(soup.encode())

    return {
        "banner": lambda d, s: run(d, s, UNDECIDED, False),
        "decided": lambda d, s: run(d, s, ALL_GRANTED, False),
        "cut": lambda d, s: run(d, s, ALL_GRANTED, True),
    }


# -- the tokenizer alone: every token, or wanted names (what a rewriter would ask for) ----------

#: What the consent jobs act on, plus svg/math so that a handler can follow foreign content.
CONSENT_NAMES = frozenset(("html", "head", "body", "script", "iframe", "svg", "math"))
#: Consent: only gated elements; the cut also wants script[type] (JSON-LD).
CONSENT_FILTERS = {"script": frozenset({"data-consent"}), "iframe": frozenset({"data-consent"})}
CUT_FILTERS = {"script": frozenset({"data-consent", "type"}), "iframe": frozenset({"data-consent"})}
#: Inside svg/math: the tags that can end foreign content (its own ends, integration points,
#: HTML breakout tags; a prototype leaves out end tags of open HTML elements other than these).
INTEGRATION_POINTS = SPECIAL_MATHML | SPECIAL_SVG
FOREIGN_STOPS = INTEGRATION_POINTS | FOREIGN_BREAKOUT | {"svg", "math", "font", "html"}
RAW_TEXT = RAW_TEXT_ELEMENTS


class _WantedHandler:
    """What a rewriter's handler must at least do with wanted names, for the tokenizer alone:
    want the job's names (gated scripts and iframes only by attribute), let svg/math that
    provably stay foreign pass whole (as the rewriter does), follow the others with
    the foreign scanner (every token in an integration point), and for the cut take every
    token inside the article container, as the tree model needs, until the container's end
    tag closes it (counted by name: a prototype, not the tree model). ``wanted=None`` reports
    every token."""

    def __init__(self, wanted: frozenset[str] | None, container: str = "") -> None:
        self.wanted = wanted
        self.tokenizer: Tokenizer | None = None
        self.foreign = 0
        self.integration = 0
        self.inside = 0
        self.container = _selector_parts(container) if container else None
        self.filters = CUT_FILTERS if container else CONSENT_FILTERS
        self.names = wanted
        if wanted is not None and self.container is not None:
            self.names = wanted | {self.container[0]}

    def text(self, data: bytes) -> None:
        pass

    def raw_text(self, data: bytes) -> None:
        pass

    def other(self, data: bytes) -> None:
        pass

    def passthrough(self, data: bytes) -> None:
        pass

    def in_foreign_content(self) -> bool:
        return self.foreign > 0 and not self.integration

    def start(self) -> None:
        if self.tokenizer is not None:
            self.tokenizer.set_wanted(self.names, only_with=self.filters, whole_foreign=True)

    def _refresh(self) -> None:
        tokenizer = self.tokenizer
        if tokenizer is None or self.wanted is None:
            return
        if self.inside or self.integration:
            tokenizer.set_wanted(None)
        elif self.foreign:
            tokenizer.set_wanted(FOREIGN_STOPS, foreign=True)
        else:
            tokenizer.set_wanted(self.names, only_with=self.filters, whole_foreign=True)

    def start_tag(self, tag: StartTag) -> ContentModel:
        name = tag.name
        if self.foreign and not self.integration:
            if name in INTEGRATION_POINTS and not tag.self_closing:
                self.integration = 1
                self._refresh()
            elif name in ("svg", "math") and not tag.self_closing:
                self.foreign += 1
            elif name in FOREIGN_STOPS:
                self.foreign = 0  # an HTML breakout tag ends foreign content
                self._refresh()
            return ContentModel.DATA if self.foreign else self._html_model(name)
        if name in ("svg", "math") and not tag.self_closing:
            self.foreign, self.integration = 1, 0
            self._refresh()
            return ContentModel.DATA
        if self.container is not None and name == self.container[0]:
            if self.inside:
                self.inside += 1
            elif self._is_container(tag):
                self.inside = 1
                self._refresh()
        return self._html_model(name)

    @staticmethod
    def _html_model(name: str) -> ContentModel:
        if name == "script":
            return ContentModel.SCRIPT
        if name in RAW_TEXT:
            return ContentModel.RAWTEXT
        return ContentModel.PLAINTEXT if name == "plaintext" else ContentModel.DATA

    def _is_container(self, tag: StartTag) -> bool:
        if self.container is None:
            return False
        _, kind, value = self.container
        attrs = tag.raw_attrs
        if kind == "#":
            return attrs.get(b"id") == value.encode()
        return value.encode() in attrs.get(b"class", b"").split()

    def end_tag(self, tag: EndTag) -> None:
        name = tag.name
        if self.integration and name in INTEGRATION_POINTS:
            self.integration = 0
            self._refresh()
        elif self.foreign and name in ("svg", "math"):
            self.foreign -= 1
            if not self.foreign:
                self._refresh()
        elif self.container is not None and self.inside and name == self.container[0]:
            self.inside -= 1
            if not self.inside:
                self._refresh()


def tokenize_job(wanted: frozenset[str] | None, cut: bool) -> Job:
    def job(data: bytes, selector: str) -> bytes:
        handler = _WantedHandler(wanted, selector if cut else "")
        tokenizer = Tokenizer(handler, max_token_bytes=CONSENT_MAX_TOKEN_BYTES)
        handler.tokenizer = tokenizer
        if wanted is not None:
            handler.start()
        tokenizer.feed(data)
        tokenizer.close()
        return b""

    return job


# -- measuring -------------------------------------------------------------------------------------


def measure(job: Job, pages: Sequence[Page], repeat: int) -> float:
    """Best-of-``repeat`` seconds for running ``job`` over all pages."""
    best = float("inf")
    for _ in range(repeat):
        start = CLOCK()
        for data, selector in pages:
            job(data, selector)
        best = min(best, CLOCK() - start)
    return best


@dataclass
class Row:
    job: str
    implementation: str
    pages: int
    megabytes: float
    seconds: float
    vs_selectolax: float | None = None
    vs_lxml: float | None = None

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.seconds


def compare(
    jobs: dict[str, dict[str, Job] | str], pages_for: dict[str, list[Page]], repeat: int
) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes = [f"{name}: skipped, {impl}" for name, impl in jobs.items() if isinstance(impl, str)]
    for job_name in JOB_NAMES:
        pages = pages_for[job_name]
        if not pages:
            notes.append(f"{job_name}: skipped (no manifest.json with article selectors)")
            continue
        megabytes = sum(len(data) for data, _ in pages) / 1e6
        # Round-robin: each repeat runs every implementation once, so that a busy moment of
        # the machine hits them all rather than one; the best of the repeats counts.
        ready = {name: impl[job_name] for name, impl in jobs.items() if not isinstance(impl, str)}
        for job in ready.values():  # warm up: compiled selectors and scan patterns, caches
            measure(job, pages[:3], 1)
        best = dict.fromkeys(ready, float("inf"))
        for _ in range(repeat):
            for name, job in ready.items():
                best[name] = min(best[name], measure(job, pages, 1))
        job_rows = [
            Row(job_name, name, len(pages), megabytes, seconds) for name, seconds in best.items()
        ]
        baseline = {row.implementation: row.seconds for row in job_rows}
        for row in job_rows:
            if SELECTOLAX in baseline:
                row.vs_selectolax = row.seconds / baseline[SELECTOLAX]
            if LXML in baseline:
                row.vs_lxml = row.seconds / baseline[LXML]
        rows.extend(job_rows)
    return rows, notes


SELECTOLAX = "selectolax (lexbor)"
LXML = "lxml.html"
OURS = "**consentgate** (streaming)"


def pathological_inputs() -> list[tuple[str, bytes, int]]:
    """(name, document, chunk size: 0 for one piece)."""
    story = b"<html><head><title>t</title></head><body><div class=story><p>lead</p><p>two</p>"
    end = b"</div></body></html>"
    nested = story + b"<div>" * 100_000 + b"x" + b"</div>" * 100_000 + end
    attributes = story + b"<p " + b" ".join(b"a%d=%d" % (i, i) for i in range(100_000)) + b">"
    attributes += b"x</p>" + end
    lt_text = story + b"<p>" + b"a < b " * 333_334 + b"</p>" + end
    attribute = story + b"<p title='" + b"x" * 10_000_000 + b"'>x</p>" + end
    return [
        ("100k nested divs", nested, 0),
        ("100k attributes in one tag", attributes, 0),
        ("2 MB of `a < b` text", lt_text, 0),
        ("10 MB attribute, one piece", attribute, 0),
        ("10 MB attribute, 4 KB chunks", attribute, 4096),
    ]


def _chunks(data: bytes, size: int) -> Iterable[bytes]:
    if size <= 0:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]


def run_pathological(repeat: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    jobs: list[tuple[str, Callable[[], list[Operation]]]] = [
        ("banner", lambda: consent_ops(UNDECIDED)),
        ("cut", lambda: consent_ops(ALL_GRANTED) + wall_ops("div.story")),
    ]
    for name, data, chunk in pathological_inputs():
        row: dict[str, object] = {"input": name, "megabytes": round(len(data) / 1e6, 2)}
        for job_name, make_ops in jobs:
            best = float("inf")
            outcome = "ok"
            for _ in range(repeat):
                rewriter = Rewriter(
                    make_ops(), content_type="text/html", max_token_bytes=CONSENT_MAX_TOKEN_BYTES
                )
                start = CLOCK()
                try:
                    for piece in _chunks(data, chunk):
                        rewriter.feed(piece)
                    rewriter.close()
                except RewriteError as exc:
                    outcome = f"fails closed: {exc.reason.value}"
                best = min(best, CLOCK() - start)
            row[f"{job_name}_seconds"] = round(best, 3)
            row[f"{job_name}_outcome"] = outcome
        for label, wanted in (("tokenizer_all", None), ("tokenizer_wanted", CONSENT_NAMES)):
            best = float("inf")
            for _ in range(repeat):
                tokenizer = Tokenizer(_WantedHandler(wanted), max_token_bytes=1 << 26)
                tokenizer.set_wanted(wanted)
                start = CLOCK()
                for piece in _chunks(data, chunk):
                    tokenizer.feed(piece)
                tokenizer.close()
                best = min(best, CLOCK() - start)
            row[f"{label}_seconds"] = round(best, 3)
        results.append(row)
    return results


def _feed_all(job_name: str, chunks: list[bytes], selector: str) -> None:
    if job_name == "cut":
        ops = consent_ops(ALL_GRANTED) + wall_ops(selector)
    else:
        ops = consent_ops(UNDECIDED)
    rewriter = Rewriter(ops, content_type="text/html", max_token_bytes=CONSENT_MAX_TOKEN_BYTES)
    try:
        for piece in chunks:
            rewriter.feed(piece)
        rewriter.close()
    except RewriteError as exc:  # see _rewrite
        if exc.reason is not RewriteErrorReason.CUT_TEXT_ECHOED:
            raise


def run_chunking(pages_for: dict[str, list[Page]], repeat: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for job_name in ("banner", "cut"):
        pages = pages_for[job_name]
        if not pages:
            continue
        megabytes = sum(len(data) for data, _ in pages) / 1e6
        sizes = (0, 4096, 1024)
        chunked = {
            size: [([data] if size == 0 else list(_chunks(data, size)), s) for data, s in pages]
            for size in sizes
        }
        best = dict.fromkeys(sizes, float("inf"))
        for _ in range(repeat):  # round-robin, as for the jobs
            for size in sizes:
                start = CLOCK()
                for chunks, selector in chunked[size]:
                    _feed_all(job_name, chunks, selector)
                best[size] = min(best[size], CLOCK() - start)
        for size in sizes:
            results.append(
                {
                    "job": job_name,
                    "chunks": "one piece" if size == 0 else f"{size // 1024} KB",
                    "feeds": sum(len(chunks) for chunks, _ in chunked[size]),
                    "mb_per_s": round(megabytes / best[size], 1),
                    "time_vs_one_piece": round(best[size] / best[0], 2),
                }
            )
    return results


# -- output ------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def print_markdown(
    rows: list[Row],
    notes: list[str],
    pathological: list[dict[str, object]],
    chunking: list[dict[str, object]],
    args: argparse.Namespace,
) -> None:
    print(
        f"Python {platform.python_version()}, {platform.machine()}, best of {args.repeat}, "
        f"pages from {os.path.relpath(args.pages, ROOT)}\n"
    )
    print("| job | implementation | pages | MB | MB/s | time / selectolax | time / lxml |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    last_job = ""
    for row in rows:
        job = row.job if row.job != last_job else ""
        last_job = row.job
        print(
            f"| {job} | {row.implementation} | {row.pages} | {row.megabytes:.1f} | "
            f"{row.mb_per_s:.1f} | {_ratio(row.vs_selectolax)} | {_ratio(row.vs_lxml)} |"
        )
    for note in notes:
        print(f"\nnote: {note}")
    if pathological:
        print(
            "\n| pathological input | MB | banner job s | outcome | cut job s | outcome | "
            "tokenizer s (every token) | tokenizer s (wanted names) |"
        )
        print("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |")
        for p in pathological:
            print(
                f"| {p['input']} | {p['megabytes']} | {p['banner_seconds']} | "
                f"{p['banner_outcome']} | {p['cut_seconds']} | {p['cut_outcome']} | "
                f"{p['tokenizer_all_seconds']} | {p['tokenizer_wanted_seconds']} |"
            )
    if chunking:
        print("\n| job | chunks | feed() calls | MB/s | time / one piece |")
        print("| --- | --- | ---: | ---: | ---: |")
        for c in chunking:
            print(
                f"| {c['job']} | {c['chunks']} | {c['feeds']} | {c['mb_per_s']} | "
                f"{c['time_vs_one_piece']} |"
            )


def load_pages(folder: Path) -> dict[str, list[Page]]:
    files = sorted(folder.glob("*.html"))
    if not files:
        raise SystemExit(f"no .html files in {folder}")
    every = [(f.read_bytes(), "") for f in files]
    cut: list[Page] = []
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        cut = [
            ((folder / name).read_bytes(), entry["article_selector"])
            for name, entry in sorted(manifest.items())
        ]
    return {"banner": every, "decided": every, "cut": cut}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pages", type=Path, default=ROOT.parent / "shared/corpora/news-pages")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="skip BeautifulSoup, pathological inputs, chunking"
    )
    args = parser.parse_args(argv)
    pages_for = load_pages(args.pages)

    jobs: dict[str, dict[str, Job] | str] = {
        OURS: ours(),
        "tokenizer alone, every token": {
            "banner": tokenize_job(None, False),
            "decided": tokenize_job(None, False),
            "cut": tokenize_job(None, True),
        },
        "tokenizer alone, wanted names": {
            "banner": tokenize_job(CONSENT_NAMES, False),
            "decided": tokenize_job(CONSENT_NAMES, False),
            "cut": tokenize_job(CONSENT_NAMES, True),
        },
        SELECTOLAX: selectolax_jobs(),
        LXML: lxml_jobs(),
    }
    if not args.quick:
        jobs["BeautifulSoup (html.parser)"] = bs4_jobs("html.parser")
        jobs["BeautifulSoup (lxml)"] = bs4_jobs("lxml")
    rows, notes = compare(jobs, pages_for, args.repeat)
    pathological = [] if args.quick else run_pathological(max(1, min(args.repeat, 2)))
    chunking = [] if args.quick else run_chunking(pages_for, args.repeat)
    if args.json:
        print(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "results": [
                        {**row.__dict__, "mb_per_s": round(row.mb_per_s, 2)} for row in rows
                    ],
                    "pathological": pathological,
                    "chunking": chunking,
                    "notes": notes,
                },
                indent=2,
            )
        )
        return 0
    print_markdown(rows, notes, pathological, chunking, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
