"""Server-side charts: matplotlib (Agg/SVG backend, imported lazily) renders an inline SVG,
and the same data is downloadable as CSV, so every figure can be checked and reused.

A :class:`Chart` is plain data (series of x/y points with labels and units); rendering is
a pure function of it, and its CSV has one row per point: ``series, <x label>, <y label>``.
"""

from __future__ import annotations

import csv
import html
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rechenwerk.accounting.award_history import AwardLine
from rechenwerk.reports.burndown import BurnDown

XValue = datetime | float | int | str

_LOCK = threading.Lock()
# matplotlib is not thread-safe: every drawing (SVG here, the yearly PDF) holds this lock.
DRAW_LOCK = _LOCK
_PALETTE = ("#1f5fbf", "#d9822b", "#2e9d5b", "#b3261e", "#7b4fc9", "#5d6778", "#0f8a9d")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    x: Sequence[XValue]
    y: Sequence[float]
    style: Literal["line", "step", "dashed", "dotted", "marker", "bar", "area"] = "line"
    color: str | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: {len(self.x)} x values, {len(self.y)} y")


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # stable name, used in file names and SVG ids
    title: str
    x_label: str
    y_label: str  # with the unit, e.g. "GPU-hours"
    series: tuple[Series, ...]
    kind: Literal["time", "category", "numeric"] = "time"
    horizontal: bool = False  # category charts: horizontal bars (long names)
    y_min: float | None = 0.0
    y_max: float | None = None
    note: str = ""  # a line under the chart (assumptions, data source)
    annotations: tuple[tuple[XValue, float, str], ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return all(len(s.x) == 0 for s in self.series)


def _x_csv(value: XValue) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def chart_csv(chart: Chart) -> str:
    """One row per point: ``series,<x_label>,<y_label>``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["series", chart.x_label, chart.y_label])
    for s in chart.series:
        for x, y in zip(s.x, s.y, strict=True):
            writer.writerow([s.label, _x_csv(x), f"{float(y):.6g}"])
    return buf.getvalue()


def _clean_svg(svg: str, label: str) -> str:
    """Inline-ready SVG: no XML prolog/doctype, scalable (viewBox only, no fixed size), an
    image with the chart's title as its accessible name (WCAG 1.1.1)."""
    start = svg.find("<svg")
    svg = svg[start:]
    head_end = svg.find(">")
    head = svg[:head_end]
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    name = html.escape(label, quote=True)
    return (head + f' preserveAspectRatio="xMidYMid meet" role="img" aria-label="{name}"'
            + svg[head_end:])


def chart_size(chart: Chart, width_in: float | None = None,
               height_in: float | None = None) -> tuple[float, float]:
    """Inches of ``chart``: category charts get a height that fits their bars, so labels
    stay readable when the figure is scaled to its column."""
    if chart.kind == "category":
        bars = max((len(s.x) for s in chart.series), default=1) * max(len(chart.series), 1)
        width_in = width_in or 5.4
        height_in = height_in or min(max(2.0, 0.28 * bars + 1.1), 7.0)
    return width_in or 7.2, height_in or 3.2


def chart_style(chart: Chart) -> Any:
    """The matplotlib rc parameters every chart is drawn with."""
    return {
        "svg.fonttype": "none",
        "svg.hashsalt": f"rechenwerk-{chart.key}",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titleweight": "bold",
        "axes.titlesize": 10,
    }


def draw_chart(fig: Any, chart: Chart) -> None:
    """Draw ``chart`` on a matplotlib ``Figure`` (under ``chart_style``): the SVG of the
    portal and the pages of the yearly report's PDF are drawn alike."""
    ax = fig.add_subplot()
    ax.set_title(chart.title, loc="left")
    ax.grid(True, axis="y" if not chart.horizontal else "x", color="#e3e6eb", linewidth=0.7)
    ax.set_axisbelow(True)
    if chart.empty:
        ax.text(
            0.5, 0.5, "no data yet", ha="center", va="center",
            transform=ax.transAxes, color="#5d6778",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    elif chart.kind == "category":
        _draw_categories(ax, chart)
    else:
        _draw_xy(ax, chart)
    for x, y, text in chart.annotations:
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 6),
                    fontsize=8, color="#1d2330")
    if chart.kind != "category" or not chart.horizontal:
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
    else:
        ax.set_xlabel(chart.y_label)
    if sum(1 for s in chart.series if s.label) > 1 and not chart.empty:
        ax.legend(loc="best", frameon=False, fontsize=8)


def chart_svg(chart: Chart, *, width_in: float | None = None,
              height_in: float | None = None) -> str:
    """Render ``chart`` to an inline SVG string."""
    width_in, height_in = chart_size(chart, width_in, height_in)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with _LOCK, matplotlib.rc_context(chart_style(chart)):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasSVG(fig)
        draw_chart(fig, chart)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    return _clean_svg(buf.getvalue(), chart.title)


def _draw_xy(ax: Any, chart: Chart) -> None:
    for i, s in enumerate(chart.series):
        color = s.color or _PALETTE[i % len(_PALETTE)]
        xs = list(s.x)
        ys = [float(v) for v in s.y]
        if not xs:
            continue
        if s.style == "step":
            ax.step(xs, ys, where="post", label=s.label, color=color, linewidth=1.6)
        elif s.style == "dashed":
            ax.plot(xs, ys, linestyle="--", label=s.label, color=color, linewidth=1.4)
        elif s.style == "dotted":
            ax.plot(xs, ys, linestyle=":", label=s.label, color=color, linewidth=1.4)
        elif s.style == "marker":
            ax.plot(xs, ys, linestyle="none", marker="o", label=s.label, color=color)
        elif s.style == "area":
            ax.fill_between(xs, ys, step="post", alpha=0.25, color=color)
            ax.step(xs, ys, where="post", label=s.label, color=color, linewidth=1.2)
        elif s.style == "bar":
            ax.bar(xs, ys, label=s.label, color=color)
        else:
            ax.plot(xs, ys, label=s.label, color=color, linewidth=1.6)
    if chart.kind == "time":
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    if chart.y_min is not None or chart.y_max is not None:
        ax.set_ylim(bottom=chart.y_min, top=chart.y_max)


def _draw_categories(ax: Any, chart: Chart) -> None:
    n = len(chart.series)
    labels = [str(x) for x in chart.series[0].x] if chart.series else []
    width = 0.8 / max(n, 1)
    positions = list(range(len(labels)))
    for i, s in enumerate(chart.series):
        color = s.color or _PALETTE[i % len(_PALETTE)]
        offs = [p - 0.4 + width * (i + 0.5) for p in positions]
        values = [float(v) for v in s.y]
        if chart.horizontal:
            ax.barh(offs, values, height=width, label=s.label, color=color)
        else:
            ax.bar(offs, values, width=width, label=s.label, color=color)
    if chart.horizontal:
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.grid(False, axis="y")
    else:
        ax.set_xticks(positions, labels, rotation=30 if len(labels) > 6 else 0, ha="right"
                      if len(labels) > 6 else "center")


def chart_context(chart: Chart, csv_url: str | None, svg_url: str | None = None) -> dict[str, Any]:
    """What the ``_chart.html`` partial needs."""
    from markupsafe import Markup

    return {
        "key": chart.key,
        "title": chart.title,
        "svg": Markup(chart_svg(chart)),
        "csv_url": csv_url,
        "svg_url": svg_url,
        "note": chart.note,
    }


def burndown_chart(b: BurnDown) -> Chart:
    """The burn-down of one award period: remaining hours, commitments and forecast."""
    rx, ry = b.remaining_series()
    fx, fy = b.forecast_series()
    p = b.period
    series = [
        Series("awarded", [p.starts_at, p.ends_at], [b.awarded] * 2, "dotted",
               "#5d6778"),
        Series("remaining (awarded - used)", rx, ry, "step", "#1f5fbf"),
        Series("available after committed jobs", [b.now], [b.available], "marker",
               "#d9822b"),
    ]
    if fx:
        series.append(Series(
            f"forecast at {b.rate_gpu_hours_per_day:,.1f} GPU-hours/day", fx, fy,
            "dashed", "#b3261e"))
    return Chart(
        key=f"burndown-{b.project}-{p.award_period_id}",
        title=f"{b.project} · {p.gpu_type} · {p.starts_at:%Y-%m-%d} to "
              f"{p.ends_at:%Y-%m-%d}",
        x_label="date (UTC)",
        y_label="GPU-hours remaining",
        series=tuple(series),
        y_min=min(0.0, *(v for v in ry + fy)) if ry else 0.0,
        note=("forecast: the last "
              f"{b.window_days:.0f} days' rate of use"),
    )


def award_periods_chart(award: AwardLine, now: datetime) -> Chart:
    """One award across all its periods: the GPU-hours awarded so far (a step at each
    period's start) against those used by the end of each period (or now)."""
    starts = [p.starts_at for p in award.periods]
    cumulative: list[float] = []
    total = 0.0
    for p in award.periods:
        total += p.awarded_gpu_hours
        cumulative.append(total)
    ux: list[XValue] = [award.starts_at]
    uy: list[float] = [0.0]
    used = 0.0
    for p in award.periods:
        if p.status == "upcoming":
            break
        used += p.used_gpu_hours
        ux.append(min(p.ends_at, now))
        uy.append(used)
    return Chart(
        key=f"award-{award.award_id}",
        title=f"Award {award.award_id} · {award.gpu_type} · {len(award.periods)} periods",
        x_label="date (UTC)",
        y_label="GPU-hours",
        series=(
            Series("awarded so far", [*starts, award.expires_at],
                   [*cumulative, cumulative[-1]] if cumulative else [0.0], "step", "#5d6778"),
            Series("used", ux, uy, "line", "#1f5fbf"),
        ),
        note="used: settled GPU-hours at the end of each period (the current one: now)",
    )
