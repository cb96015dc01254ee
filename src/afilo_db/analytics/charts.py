"""The reports drawn with matplotlib (a bare Figure on the Agg canvas, never pyplot: no display,
no global figure state, nothing downloaded): PNG or SVG bytes for
`afilo-db report --format png|svg`, the same SVG inline on the studio's dashboard.

Text stays text in the SVG (a screen reader and a search find it), and labels are never read as
mathtext, so a product called "$9 kit" is drawn as written.
"""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import matplotlib
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from afilo_db.analytics.reports import ChartData, ReportTable, report_definition

ImageFormat = Literal["png", "svg"]
# Colour-blind-safe (Okabe-Ito), one per series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STYLE: Any = {
    "text.parse_math": False,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "svg.hashsalt": "afilo",
}
LABEL_LIMIT = 32


def _short(label: str) -> str:
    return label if len(label) <= LABEL_LIMIT else label[: LABEL_LIMIT - 1] + "…"


def _thousands(value: float, _position: object) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:,.2f}"


def _draw(axes: Any, chart: ChartData) -> None:
    if chart.title:
        axes.set_title(chart.title, loc="left", fontsize=9)
    if not chart.categories:
        axes.text(0.5, 0.5, "no data in this range", ha="center", va="center",
                  transform=axes.transAxes)  # fmt: skip
        axes.set_axis_off()
        return
    positions = list(range(len(chart.categories)))
    bars = [series for series in chart.series if not series.line]
    lines = [series for series in chart.series if series.line]
    if chart.kind == "hbars":
        values = bars[0].values
        axes.barh(positions, values, color=PALETTE[0], label=bars[0].name)
        axes.set_yticks(positions, [_short(label) for label in chart.categories])
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.xaxis.set_major_formatter(FuncFormatter(_thousands))
        for position, value in zip(positions, values, strict=True):
            axes.annotate(f"{value:,.0f}", (value, position), xytext=(3, 0),
                          textcoords="offset points", va="center")  # fmt: skip
        return
    if chart.kind == "stacked":
        base = [0.0] * len(positions)
        for index, series in enumerate(bars):
            axes.bar(positions, series.values, bottom=base, label=series.name,
                     color=PALETTE[index % len(PALETTE)])  # fmt: skip
            base = [b + v for b, v in zip(base, series.values, strict=True)]
    elif chart.kind == "columns" and bars:
        width = 0.8 / len(bars)
        for index, series in enumerate(bars):
            offset = (index - (len(bars) - 1) / 2) * width
            axes.bar([p + offset for p in positions], series.values, width, label=series.name,
                     color=PALETTE[index % len(PALETTE)])  # fmt: skip
        axes.axhline(0, color="#555", linewidth=0.6)
    for index, series in enumerate(lines):
        colour = PALETTE[(len(bars) + index) % len(PALETTE)]
        points = [
            (p, v) for p, v in zip(positions, series.values, strict=True) if not math.isnan(v)
        ]
        axes.plot([p for p, _ in points], [v for _, v in points], marker="o", label=series.name,
                  color=colour if chart.kind != "lines" else PALETTE[index % len(PALETTE)])  # fmt: skip
    axes.set_xticks(positions, chart.categories, rotation=45 if len(positions) > 6 else 0,
                    ha="right" if len(positions) > 6 else "center")  # fmt: skip
    axes.yaxis.set_major_formatter(FuncFormatter(_thousands))
    if chart.counts:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", color="#ddd", linewidth=0.6)
    axes.set_axisbelow(True)
    if chart.x_label:
        axes.set_xlabel(chart.x_label)
    if chart.y_label:
        axes.set_ylabel(chart.y_label)
    # Every series is named, a lone one too.
    if chart.series:
        axes.legend(frameon=False, fontsize=8, ncols=min(len(chart.series), 4),
                    loc="upper left", bbox_to_anchor=(0, -0.18 if len(positions) > 6 else -0.1))  # fmt: skip


def render(table: ReportTable, image_format: ImageFormat) -> bytes:
    """The report's chart as PNG or SVG bytes."""
    panels = report_definition(table.name).chart(table) or [ChartData("columns", [], [])]
    heights = [
        max(3.6, 0.9 + 0.28 * (len(panel.categories) if panel.kind == "hbars" else 0)) + 0.5
        for panel in panels
    ]
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(7.2, sum(heights)), layout="constrained")
        figure.suptitle(table.heading, x=0.02, ha="left", fontweight="bold")
        grid = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)
        for axes, panel in zip(grid[:, 0], panels, strict=True):
            _draw(axes, panel)
        buffer = io.BytesIO()
        # No date in the SVG: the same report draws the same bytes.
        metadata = {"Date": None} if image_format == "svg" else None
        figure.savefig(buffer, format=image_format, dpi=110, metadata=metadata)
    return buffer.getvalue()


def inline_svg(table: ReportTable) -> str:
    """The chart as an <svg> element to put in an HTML page: matplotlib escapes every text it
    writes; the XML prolog and DOCTYPE are dropped."""
    document = render(table, "svg").decode()
    return document[document.index("<svg") :]
