"""Charts as inline SVG, drawn in Python: nothing to download, nothing to run in the browser.

Each chart is an <svg role="img"> with a title a screen reader reads, and a <title> on every
bar so that hovering shows the exact figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe-Ito), one per series or category.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'

Number = int | Decimal


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number]


def _fmt(value: Number) -> str:
    return f"{value:,.2f}" if isinstance(value, Decimal) else f"{value:,}"


def _svg(title: str, width: int, height: int, body: list[str]) -> Markup:
    label = escape(title)
    # Every text drawn is escaped where the body is built.
    return Markup(  # noqa: S704
        f'<svg class="studio-chart" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width: {width}px" xmlns="http://www.w3.org/2000/svg" {_FONT}>'
        f"<title>{label}</title>" + "".join(body) + "</svg>"
    )


def _nice_step(raw: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `raw` (and at least
    1), so that the four grid steps of an axis read 0, 1, 2, 3, 4 or 0, 250, 500, ... ."""
    magnitude = Decimal(1)
    while magnitude * 10 <= raw:
        magnitude *= 10
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if magnitude * factor >= raw:
            return magnitude * factor
    return magnitude * 10


def _tick(value: Decimal) -> str:
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.1f}"


def _legend(series: Sequence[Series], x: int, y: int) -> list[str]:
    parts = []
    for index, item in enumerate(series):
        left = x + index * 150
        parts.append(
            f'<rect x="{left}" y="{y - 10}" width="12" height="12" fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{left + 18}" y="{y}">{escape(item.name)}</text>'
        )
    return parts


def horizontal_bars(title: str, items: Sequence[tuple[str, Number]], *, width: int = 560) -> Markup:
    """One bar per (label, value), longest first as given; for counts by name."""
    row, label_width, top = 22, 210, 8
    height = top * 2 + row * max(len(items), 1)
    peak = max((value for _, value in items), default=0) or 1
    span = width - label_width - 70
    body = []
    if not items:
        body.append(f'<text x="{label_width}" y="{top + 14}">no data</text>')
    for index, (label, value) in enumerate(items):
        y = top + index * row
        length = max(float(value) / float(peak) * span, 1 if value else 0)
        text = escape(label if len(label) <= 30 else label[:29] + "…")
        body.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{text}</text>'
            f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{_fmt(value)}</text>'
        )
    return _svg(title, width, height, body)


def stacked_columns(
    title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 560
) -> Markup:
    """One column per category, the series stacked in it; for figures over time or by group."""
    height, left, bottom, top = 260, 64, 44, 28
    plot_height = height - bottom - top
    totals = [sum((s.values[i] for s in series), Decimal(0)) for i in range(len(categories))]
    peak = _nice_step(Decimal(max(totals, default=Decimal(0))) / 4) * 4
    slot = (width - left - 10) / max(len(categories), 1)
    bar_width = min(slot * 0.6, 56)
    body = _legend(series, left, 14)
    for step in range(5):
        y = top + plot_height - plot_height * step / 4
        body.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(peak * step / 4)}</text>'
        )
    if not categories:
        body.append(f'<text x="{left + 10}" y="{top + 20}">no data</text>')
    for index, category in enumerate(categories):
        x = left + slot * index + (slot - bar_width) / 2
        base = float(top + plot_height)
        for number, item in enumerate(series):
            value = item.values[index]
            size = float(value) / float(peak) * plot_height
            base -= size
            if value:
                body.append(
                    f'<rect class="bar" x="{x:.1f}" y="{base:.1f}" width="{bar_width:.1f}" '
                    f'height="{size:.1f}" fill="{PALETTE[number % len(PALETTE)]}">'
                    f"<title>{escape(category)}, {escape(item.name)}: {_fmt(value)}</title></rect>"
                )
        body.append(
            f'<text x="{x + bar_width / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{escape(category)}</text>"
        )
    return _svg(title, width, height, body)
