"""The figures as HTML: one self-contained page (``consentgate stats --html``) and the
section the dashboard shows. Inline CSS and inline SVG, no script, no external
resource. Every chart has a text title and description and its data in a table.
Every interpolated value goes through :func:`_e` (:func:`consentgate.markup.escape`).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence

from consentgate.markup import escape as _e
from consentgate.operator.stats import ACTIONS, METHODS, Day, Stats, percent
from consentgate.operator.store import (
    BANNER_IMPRESSIONS,
    COUNTER_NAMES,
    REGISTRATIONS,
    WALL_IMPRESSIONS,
)

__all__ = ["CSS", "CSS_SHA256", "render_report", "stats_section"]

ACTION_COLOURS = {
    "grant": "#2b7a3d",
    "reject": "#b3362b",
    "update": "#2f6db5",
    "withdraw": "#8a5a00",
    "gpc": "#6b4fa0",
}
COUNTER_COLOURS = {
    BANNER_IMPRESSIONS: "#2f6db5",
    WALL_IMPRESSIONS: "#b3362b",
    REGISTRATIONS: "#2b7a3d",
}
COUNTER_LABELS = {
    BANNER_IMPRESSIONS: "Banner impressions",
    WALL_IMPRESSIONS: "Wall impressions",
    REGISTRATIONS: "Registrations",
}
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36

CSS = """
body{font:16px/1.5 system-ui,sans-serif;color:#1b1b1b;background:#fff;margin:0;
padding:1rem 1.5rem;max-width:64rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #bbb;padding:.25rem .6rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.25rem 0}
.figures{display:flex;flex-wrap:wrap;gap:.75rem;padding:0;list-style:none}
.figures li{border:1px solid #bbb;border-radius:4px;padding:.5rem .8rem;min-width:10rem}
.figures strong{display:block;font-size:1.4rem}
svg{max-width:100%;height:auto;display:block}
.legend svg{display:inline-block}
.legend{display:flex;flex-wrap:wrap;gap:1rem;padding:0;list-style:none;font-size:.9rem}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
.note{color:#444;font-size:.9rem}
nav a,nav button{margin-right:1rem}
form.inline{display:inline}
input[type=text],input[type=password],input[type=search]{font:inherit;padding:.3rem;min-width:20rem}
button{font:inherit;padding:.3rem .8rem}
.error{color:#b3362b;font-weight:600}
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5rem}
""".strip()
# For a Content-Security-Policy that allows exactly this stylesheet and nothing else.
CSS_SHA256 = "'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() + "'"


def _n(value: int) -> str:
    return f"{value:,}"


def _nice_max(value: int) -> int:
    """A round top for an axis: 1, 2, 5 × 10ⁿ at or above ``value``."""
    if value <= 0:
        return 1
    magnitude = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _svg_open(chart_id: str, title: str, desc: str, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{_e(title)}</title><desc id="{chart_id}-d">{_e(desc)}</desc>'
    )


def _y_axis(top_value: int, suffix: str = "") -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top_value * i / 4
        y = TOP + plot_h - plot_h * i / 4
        label = f"{value:g}{suffix}"
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#444">{_e(label)}</text>'
        )
    return "".join(parts)


def _x_labels(days: Sequence[Day], x_of: list[float]) -> str:
    if not days:
        return ""
    step = max(1, math.ceil(len(days) / 8))
    parts = []
    for i in range(0, len(days), step):
        parts.append(
            f'<text x="{x_of[i]:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
            f'text-anchor="middle" fill="#444">{_e(days[i].day.strftime("%m-%d"))}</text>'
        )
    return "".join(parts)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10" width="12" height="12" '
        f'aria-hidden="true"><rect width="10" height="10" fill="{colour}"/></svg>'
        f"{_e(label)}</li>"
        for label, colour in items
    )
    return f'<ul class="legend">{cells}</ul>'


def decisions_chart(days: Sequence[Day]) -> str:
    """Stacked bars: decisions per day, by action."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((d.decisions for d in days), default=0))
    total = sum(d.decisions for d in days)
    svg = [
        _svg_open(
            "chart-decisions",
            "Decisions per day, by action",
            f"{total} decisions over {len(days)} days; stacked bars, one per day.",
        ),
        _y_axis(top),
    ]
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.8, 1.0)
    centres = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        centres.append(x + bar / 2)
        y = float(TOP + plot_h)
        for action in ACTIONS:
            count = day.by_action[action]
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            svg.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{ACTION_COLOURS[action]}"><title>{_e(day.day.isoformat())}: '
                f"{count} {action}</title></rect>"
            )
    svg.append(_x_labels(days, centres))
    svg.append("</svg>")
    legend = _legend([(a, ACTION_COLOURS[a]) for a in ACTIONS])
    return "".join(svg) + legend


def counters_chart(days: Sequence[Day]) -> str:
    """Lines: banner impressions, wall impressions and registrations per day."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((d.counters[n] for d in days for n in COUNTER_NAMES), default=0))
    svg = [
        _svg_open(
            "chart-counters",
            "Impressions and registrations per day",
            "One line each for banner impressions, wall impressions and registrations.",
        ),
        _y_axis(top),
    ]
    n = len(days)
    xs = [LEFT + (plot_w * (i + 0.5) / n) for i in range(n)] if n else []
    for name in COUNTER_NAMES:
        points = " ".join(
            f"{xs[i]:.1f},{TOP + plot_h - plot_h * d.counters[name] / top:.1f}"
            for i, d in enumerate(days)
        )
        if points:
            svg.append(
                f'<polyline points="{points}" fill="none" stroke="{COUNTER_COLOURS[name]}" '
                f'stroke-width="2"/>'
            )
    svg.append(_x_labels(days, xs))
    svg.append("</svg>")
    legend = _legend([(COUNTER_LABELS[n], COUNTER_COLOURS[n]) for n in COUNTER_NAMES])
    return "".join(svg) + legend


def _hbars(chart_id: str, title: str, desc: str, rows: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars; ``rows`` are (label, share of the full width 0..1, value text)."""
    row_h = 28
    height = max(len(rows), 1) * row_h + 8
    label_w = 170
    plot_w = WIDTH - label_w - 90
    svg = [_svg_open(chart_id, title, desc, height)]
    for i, (label, share, text) in enumerate(rows):
        y = 4 + i * row_h
        w = max(plot_w * min(max(share, 0.0), 1.0), 0.0)
        svg.append(
            f'<text x="{label_w - 8}" y="{y + 17}" font-size="13" text-anchor="end" '
            f'fill="#1b1b1b">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{plot_w}" height="18" fill="#eee"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="18" fill="#2f6db5"/>'
            f'<text x="{label_w + plot_w + 8}" y="{y + 17}" font-size="13" '
            f'fill="#1b1b1b">{_e(text)}</text>'
        )
    if not rows:
        svg.append(f'<text x="{label_w}" y="20" font-size="13" fill="#444">no data</text>')
    svg.append("</svg>")
    return "".join(svg)


def category_chart(stats: Stats) -> str:
    rows = [(r.category, r.rate or 0.0, percent(r.rate)) for r in stats.category_rates]
    return _hbars(
        "chart-categories",
        "Consent rate per category",
        f"Share of consent ids whose {stats.rate_basis} grants each category.",
        rows,
    )


def funnel_chart(stats: Stats) -> str:
    steps = [
        ("Banner impressions", stats.banner_impressions),
        ("Banner answers", stats.banner_decisions),
        ("Wall impressions", stats.wall_impressions),
        ("Registrations", stats.registrations),
    ]
    top = max((v for _, v in steps), default=0) or 1
    rows = [(label, value / top, _n(value)) for label, value in steps]
    return _hbars(
        "chart-funnel",
        "Funnel: banner and wall",
        f"Banner answer rate {percent(stats.banner_answer_rate)}; wall to registration "
        f"conversion {percent(stats.wall_conversion)}.",
        rows,
    )


def _figure(label: str, value: str) -> str:
    return f"<li>{_e(label)}<strong>{_e(value)}</strong></li>"


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    numeric = ' class="n"'
    ths = "".join(f'<th scope="col"{numeric if i else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    body = []
    for row in rows:
        cells = [f'<th scope="row">{_e(row[0])}</th>']
        cells += [f'<td class="n">{_e(v)}</td>' for v in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{ths}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def stats_section(stats: Stats, heading_level: int = 2) -> str:
    """Figures, charts and their tables; headings start at ``heading_level``."""
    h = f"h{heading_level}"
    figures = "".join(
        [
            _figure("Decisions", _n(stats.decisions)),
            _figure("Consent ids", _n(stats.consent_ids)),
            _figure("GPC share", percent(stats.gpc_share)),
            _figure("Banner impressions", _n(stats.banner_impressions)),
            _figure("Banner answer rate", percent(stats.banner_answer_rate)),
            _figure("Wall impressions", _n(stats.wall_impressions)),
            _figure("Registrations", _n(stats.registrations)),
            _figure("Wall → registration", percent(stats.wall_conversion)),
        ]
    )
    parts = [
        f'<p class="note">Window: {_e(stats.window.describe())}. Times are UTC.</p>',
        f'<ul class="figures">{figures}</ul>',
        f"<{h}>Decisions per day</{h}>",
        decisions_chart(stats.days),
        _table(
            "Decisions by action",
            ("action", "decisions"),
            [(a, _n(stats.by_action[a])) for a in ACTIONS],
        ),
        _table(
            "Decisions by method",
            ("method", "decisions"),
            [(m, _n(stats.by_method[m])) for m in METHODS],
        ),
        f"<{h}>Consent rate per category</{h}>",
        f'<p class="note">Over the {_e(stats.rate_basis)} ({_n(stats.consent_ids)} ids). '
        "Required categories are always on and not shown.</p>",
        category_chart(stats),
        _table(
            "Consent rate per category",
            ("category", "granted", "consent ids", "rate"),
            [
                (r.category, _n(r.granted), _n(r.total), percent(r.rate))
                for r in stats.category_rates
            ],
        ),
        f"<{h}>Funnel</{h}>",
        funnel_chart(stats),
        f"<{h}>Impressions and registrations per day</{h}>",
        counters_chart(stats.days),
        "<details><summary>Per-day figures</summary>",
        _table(
            "Per day",
            ("day", "decisions", *ACTIONS, *(COUNTER_LABELS[n] for n in COUNTER_NAMES)),
            [
                (
                    d.day.isoformat(),
                    _n(d.decisions),
                    *(_n(d.by_action[a]) for a in ACTIONS),
                    *(_n(d.counters[n]) for n in COUNTER_NAMES),
                )
                for d in stats.days
            ],
        ),
        "</details>",
    ]
    return "\n".join(parts)


def page(title: str, body: str, *, lang: str = "en") -> str:
    return (
        f'<!DOCTYPE html><html lang="{_e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )


def render_report(stats: Stats, *, site_name: str = "") -> str:
    """A self-contained HTML document: no script, no external resource."""
    title = f"consentgate figures{' — ' + site_name if site_name else ''}"
    body = f"<main><h1>{_e(title)}</h1>{stats_section(stats)}</main>"
    return page(title, body)
