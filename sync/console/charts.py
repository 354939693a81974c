"""Hours per cost center and code per month, drawn as a server-rendered SVG bar chart (no script needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from sync.reporting.model import Report, format_hours

# Colour-blind-safe palette (Okabe-Ito), repeated when there are more codes than colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
UNMAPPED_COLOUR = "#BBBBBB"
UNMAPPED = "(unmapped)"


@dataclass(frozen=True, slots=True)
class Segment:
    """One code's hours in one month (``cost_center`` empty for unmapped time)."""

    code: str
    cost_center: str
    seconds: int


@dataclass(frozen=True, slots=True)
class Bar:
    month: str
    segments: tuple[Segment, ...]

    @property
    def seconds(self) -> int:
        return sum(segment.seconds for segment in self.segments)


def month_bar(label: str, report: Report) -> Bar:
    """The bar of one month's report: its codes by cost center, then unmapped time."""
    segments = [
        Segment(code.code, center.cost_center, code.tally.seconds)
        for center in report.cost_centers
        for code in center.codes
        if code.tally.seconds
    ]
    if report.totals.unmapped_seconds:
        segments.append(Segment(UNMAPPED, "", report.totals.unmapped_seconds))
    return Bar(label, tuple(segments))


def bar_chart(bars: Sequence[Bar], *, width: int = 760, height: int = 300) -> str:
    """An accessible SVG: one stacked bar per month, one colour per code, a legend and a title per segment."""
    keys: list[tuple[str, str]] = []
    for bar in bars:
        for segment in bar.segments:
            if (segment.cost_center, segment.code) not in keys:
                keys.append((segment.cost_center, segment.code))
    keys.sort(key=lambda key: (key[1] == UNMAPPED, key))
    colours = {
        key: UNMAPPED_COLOUR if key[1] == UNMAPPED else PALETTE[index % len(PALETTE)] for index, key in enumerate(keys)
    }
    top = max((bar.seconds for bar in bars), default=0)
    left, bottom, legend_width = 56, 28, 200
    plot_width, plot_height = width - left - legend_width, height - bottom - 12
    slot = plot_width / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>Hours per cost center and code per month</title>',
        f'<line x1="{left}" y1="{12 + plot_height}" x2="{left + plot_width:.0f}" y2="{12 + plot_height}" '
        'stroke="#444"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" font-size="11">{escape(format_hours(top))} h</text>',
        f'<text x="{left - 6}" y="{12 + plot_height}" text-anchor="end" font-size="11">0</text>',
    ]
    for index, bar in enumerate(bars):
        x = left + index * slot + slot * 0.15
        y = 12.0 + plot_height
        for segment in bar.segments:
            h = plot_height * segment.seconds / top if top else 0
            y -= h
            where = f"{segment.cost_center} / " if segment.cost_center else ""
            label = f"{bar.month}: {where}{segment.code} {format_hours(segment.seconds)} h"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colours[(segment.cost_center, segment.code)]}"><title>{escape(label)}</title></rect>'
            )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle" font-size="11">'
            f"{escape(bar.month)}</text>"
        )
    for index, key in enumerate(keys):
        y = 16 + index * 18
        name = f"{key[0]} / {key[1]}" if key[0] else key[1]
        parts.append(
            f'<rect x="{width - legend_width + 10}" y="{y - 10}" width="12" height="12" fill="{colours[key]}"/>'
            f'<text x="{width - legend_width + 28}" y="{y}" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
