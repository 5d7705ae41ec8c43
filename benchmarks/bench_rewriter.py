"""Throughput of the streaming rewriter against parse-and-serialise baselines.

    python benchmarks/bench_rewriter.py [--pages DIR] [--json] [--repeat N]

Jobs: (a) insert a banner before </body> on every page; (b) keep the first two paragraphs of
the article container on the pages listed in manifest.json. Baselines (optional imports) do the
same job by parsing, editing the tree and serialising: lxml.html, selectolax (lexbor),
BeautifulSoup with html.parser and with lxml. MB/s is input megabytes (10^6 bytes) per second,
best of N repeats; "x ours" is how many times slower (>1) or faster (<1) than our rewriter.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from consentgate.rewrite import InsertHTML, Rewriter, Truncate  # noqa: E402

BANNER = "<div id=cg-banner>We use cookies</div>"
CTA = '<aside class="cg-cta">Register to read on</aside>'
Job = Callable[[bytes, str], bytes]


def ours_banner(data: bytes, _selector: str) -> bytes:
    rewriter = Rewriter([InsertHTML.before_body_close(BANNER)], encoding="utf-8")
    return rewriter.feed(data) + rewriter.close()


def ours_cut(data: bytes, selector: str) -> bytes:
    rewriter = Rewriter([Truncate(selector, CTA, keep_items=2)], encoding="utf-8")
    return rewriter.feed(data) + rewriter.close()


def lxml_jobs() -> tuple[Job, Job] | str:
    try:
        import lxml.html
    except ImportError as exc:
        return f"lxml unavailable ({exc})"

    def banner(data: bytes, _selector: str) -> bytes:
        doc = lxml.html.document_fromstring(data)
        body = doc.find("body")
        if body is not None:
            body.append(lxml.html.fragment_fromstring(BANNER))
        return bytes(lxml.html.tostring(doc, encoding="utf-8"))

    def cut(data: bytes, selector: str) -> bytes:
        doc = lxml.html.document_fromstring(data)
        for container in doc.xpath(_xpath(selector))[:1]:
            paragraphs = container.xpath(".//p")
            if len(paragraphs) > 2:
                _cut_after(container, paragraphs[1], lxml.html.fragment_fromstring(CTA))
        return bytes(lxml.html.tostring(doc, encoding="utf-8"))

    return banner, cut


def _xpath(selector: str) -> str:
    """XPath for the manifest's ``tag#id`` / ``tag.class`` selectors (no cssselect needed)."""
    tag, kind, value = re.fullmatch(r"(\w+)([#.])(.+)", selector).groups()  # type: ignore[union-attr]
    if kind == "#":
        return f'//{tag}[@id="{value}"]'
    return f'//{tag}[contains(concat(" ", normalize-space(@class), " "), " {value} ")]'


def _cut_after(container: object, keep_last: object, cta: object) -> None:
    """lxml: drop everything in ``container`` after ``keep_last`` (document order)."""
    node = keep_last
    while node is not container:
        parent = node.getparent()  # type: ignore[attr-defined]
        for sibling in list(node.itersiblings()):  # type: ignore[attr-defined]
            parent.remove(sibling)
        node.tail = None  # type: ignore[attr-defined]
        node = parent
    container.append(cta)  # type: ignore[attr-defined]


def selectolax_jobs() -> tuple[Job, Job] | str:
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError as exc:
        return f"selectolax unavailable ({exc})"

    def banner(data: bytes, _selector: str) -> bytes:
        tree = LexborHTMLParser(data)
        if tree.body is not None:
            tree.body.insert_child(LexborHTMLParser(BANNER).body.child)  # type: ignore[union-attr]
        return (tree.html or "").encode()

    def cut(data: bytes, selector: str) -> bytes:
        tree = LexborHTMLParser(data)
        container = tree.css_first(selector)
        if container is not None:
            paragraphs = container.css("p")
            if len(paragraphs) > 2:
                node = paragraphs[1]
                while node is not None and node.mem_id != container.mem_id:
                    sibling = node.next
                    while sibling is not None:
                        following = sibling.next
                        sibling.decompose()
                        sibling = following
                    node = node.parent
                container.insert_child(CTA)
        return (tree.html or "").encode()

    return banner, cut


def bs4_jobs(features: str) -> tuple[Job, Job] | str:
    try:
        from bs4 import BeautifulSoup
        if features == "lxml":
            import lxml  # noqa: F401
    except ImportError as exc:
        return f"BeautifulSoup[{features}] unavailable ({exc})"

    def banner(data: bytes, _selector: str) -> bytes:
        soup = BeautifulSoup(data, features)
        if soup.body is not None:
            soup.body.append(BeautifulSoup(BANNER, "html.parser"))
        return soup.encode()

    def cut(data: bytes, selector: str) -> bytes:
        soup = BeautifulSoup(data, features)
        container = soup.select_one(selector)
        if container is not None:
            paragraphs = container.select("p")
            if len(paragraphs) > 2:
                for element in list(paragraphs[1].find_all_next()):
                    if container in element.parents:
                        element.decompose()
                for text in list(paragraphs[1].find_all_next(string=True)):
                    if container in text.parents:
                        text.extract()
                container.append(BeautifulSoup(CTA, "html.parser"))
        return soup.encode()

    return banner, cut


def measure(job: Job, pages: list[tuple[bytes, str]], repeat: int) -> float:
    """Best-of-``repeat`` seconds for running ``job`` over all pages."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for data, selector in pages:
            job(data, selector)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=Path, default=ROOT.parent / "shared/corpora/news-pages")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    files = sorted(args.pages.glob("*.html"))
    if not files:
        parser.error(f"no .html files in {args.pages}")
    banner_pages = [(f.read_bytes(), "") for f in files]
    manifest_path = args.pages / "manifest.json"
    cut_pages: list[tuple[bytes, str]] = []
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        cut_pages = [
            ((args.pages / name).read_bytes(), entry["article_selector"])
            for name, entry in sorted(manifest.items())
        ]

    candidates: list[tuple[str, tuple[Job, Job] | str]] = [
        ("consentgate (streaming)", (ours_banner, ours_cut)),
        ("lxml.html", lxml_jobs()),
        ("selectolax (lexbor)", selectolax_jobs()),
        ("BeautifulSoup html.parser", bs4_jobs("html.parser")),
        ("BeautifulSoup lxml", bs4_jobs("lxml")),
    ]
    results: list[dict[str, object]] = []
    notes: list[str] = []
    for job_index, (job_name, pages) in enumerate(
        (("banner before </body>", banner_pages), ("keep first 2 paragraphs", cut_pages))
    ):
        if not pages:
            notes.append(f"{job_name}: skipped (no manifest.json)")
            continue
        megabytes = sum(len(data) for data, _ in pages) / 1e6
        ours: float | None = None
        for name, jobs in candidates:
            if isinstance(jobs, str):
                if job_index == 0:
                    notes.append(f"{name}: skipped, {jobs}")
                continue
            seconds = measure(jobs[job_index], pages, args.repeat)
            ours = seconds if ours is None else ours
            results.append(
                {
                    "job": job_name,
                    "implementation": name,
                    "pages": len(pages),
                    "megabytes": round(megabytes, 3),
                    "seconds": round(seconds, 4),
                    "mb_per_s": round(megabytes / seconds, 2),
                    "time_vs_ours": round(seconds / ours, 2),
                }
            )
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "results": results, "notes": notes},
                         indent=2))
        return 0
    print(f"Python {sys.version.split()[0]}, best of {args.repeat}, pages from {args.pages}")
    header = f"| {'job':<24} | {'implementation':<26} | {'pages':>5} | {'MB':>6} | " \
             f"{'MB/s':>7} | {'time x ours':>11} |"
    print(header)
    print("|" + "|".join("-" * (len(part) + 0) for part in header.split("|")[1:-1]) + "|")
    for row in results:
        print(
            f"| {row['job']:<24} | {row['implementation']:<26} | {row['pages']:>5} | "
            f"{row['megabytes']:>6} | {row['mb_per_s']:>7} | {row['time_vs_ours']:>11} |"
        )
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
