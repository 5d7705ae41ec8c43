"""The probe's report as text: the table and the summary line."""

from __future__ import annotations

from consentgate.operator.probe.results import ProbeReport, Verdict

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
