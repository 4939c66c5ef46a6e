"""The charts of the admin page `/stats`: inline SVG bar charts drawn from the report's
figures, every label escaped (the page has no JavaScript and no external resource)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from bridge.report import RATING_SCALE, DayVolume

# -- SVG -----------------------------------------------------------------------------------

WIDTH, HEIGHT = 720.0, 200.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 8.0, 16.0, 22.0
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MAX_LABELS = 12


@dataclass(frozen=True)
class Segment:
    """One stacked part of a bar; `kind` is its CSS class (see COLOURS)."""

    value: int
    kind: str


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (only every n-th bar is labelled when there are many)
    tooltip: str
    segments: tuple[Segment, ...]

    @property
    def total(self) -> int:
        return sum(segment.value for segment in self.segments)


def day_chart(days: Sequence[DayVolume]) -> str:
    bars = [Bar(label=d.day[5:], segments=(Segment(d.answered, "answered"),
                Segment(d.missed, "missed"), Segment(d.pending, "pending")),
                tooltip=f"{d.day}: {d.chats} chats, {d.answered} answered, "
                        f"{d.missed} missed, {d.pending} pending")
            for d in days]
    return bar_chart(bars, "Chats per day", empty="No chats in this period.")


def rating_chart(ratings: Mapping[str, int]) -> str:
    bars = [Bar(label=str(n), tooltip=f"rating {n}: {ratings[str(n)]}",
                segments=(Segment(ratings[str(n)], "rating"),)) for n in RATING_SCALE]
    return bar_chart(bars, "Ratings 1 to 5", empty="No ratings in this period.")


def bar_chart(bars: Sequence[Bar], title: str, *, empty: str = "No data.") -> str:
    """Bars from a shared baseline, heights proportional to their totals (the highest bar
    fills the plot); segments stack bottom up. Without any value: the `empty` text."""
    top = max((bar.total for bar in bars), default=0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(WIDTH)} {_n(HEIGHT)}"'
             f' role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    if top <= 0:
        parts.append(f'<text x="{_n(WIDTH / 2)}" y="{_n(HEIGHT / 2)}" text-anchor="middle">'
                     f"{escape(empty)}</text>")
    else:
        parts.append(_axes(top))
        slot = PLOT_WIDTH / len(bars)
        step = -(-len(bars) // MAX_LABELS)  # ceiling division: at most MAX_LABELS labels
        for i, bar in enumerate(bars):
            parts.append(_bar(bar, LEFT + i * slot, slot, top, labelled=i % step == 0,
                              numbered=len(bars) <= MAX_LABELS))
    parts.append("</svg>")
    return "".join(parts)


def _axes(top: int) -> str:
    base = TOP + PLOT_HEIGHT
    return (f'<line class="axis" x1="{_n(LEFT)}" y1="{_n(base)}" x2="{_n(WIDTH - RIGHT)}"'
            f' y2="{_n(base)}"/>'
            f'<line class="grid" x1="{_n(LEFT)}" y1="{_n(TOP)}" x2="{_n(WIDTH - RIGHT)}"'
            f' y2="{_n(TOP)}"/>'
            f'<text x="{_n(LEFT - 4)}" y="{_n(base)}" text-anchor="end">0</text>'
            f'<text x="{_n(LEFT - 4)}" y="{_n(TOP + 4)}" text-anchor="end">{top}</text>')


def _bar(bar: Bar, x: float, slot: float, top: int, *, labelled: bool,
         numbered: bool) -> str:
    width = slot * 0.8
    left = x + slot * 0.1
    centre = _n(x + slot / 2)
    y = TOP + PLOT_HEIGHT
    parts = [f"<g><title>{escape(bar.tooltip)}</title>"]
    for segment in bar.segments:
        if segment.value <= 0:
            continue
        height = segment.value / top * PLOT_HEIGHT
        y -= height
        parts.append(f'<rect class="{escape(segment.kind)}" x="{_n(left)}" y="{_n(y)}"'
                     f' width="{_n(width)}" height="{_n(height)}"/>')
    if numbered:
        parts.append(f'<text x="{centre}" y="{_n(y - 3)}" text-anchor="middle">'
                     f"{bar.total}</text>")
    if labelled:
        parts.append(f'<text x="{centre}" y="{_n(HEIGHT - 6)}" text-anchor="middle">'
                     f"{escape(bar.label)}</text>")
    parts.append("</g>")
    return "".join(parts)


def _n(value: float) -> str:
    """A coordinate with at most 2 decimals and no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
