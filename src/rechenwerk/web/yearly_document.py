"""The yearly report as a document: an HTML page (the portal's, or a standalone file with
its styles inline) and a PDF made with matplotlib's ``PdfPages`` (a title page, then per
section its table and, where it has one, its chart). Both show every figure of
``reports/yearly.py`` with its basis (measured or estimated) and its source."""

from __future__ import annotations

import io
import textwrap
from datetime import datetime
from typing import Any

from rechenwerk.reports import funder
from rechenwerk.reports.tables import Column, ReportTable
from rechenwerk.reports.yearly import ESTIMATED, MEASURED, Figure, YearlyReport
from rechenwerk.web.charts import (
    DRAW_LOCK,
    Chart,
    Series,
    chart_style,
    chart_svg,
    draw_chart,
)
from rechenwerk.web.pages.funder_report import CHARTS, funder_chart
from rechenwerk.web.rendering import DASH, fmt_hours, fmt_pct, render_html

A4 = (8.27, 11.69)  # inches, portrait
ROWS_PER_PAGE = 30
BASIS_TEXT = {
    MEASURED: "measured: counted from the centre's records (usage records, award periods, "
              "proposals, jobs)",
    ESTIMATED: "estimated: derived from a model, not read from a meter or an inventory "
               "history",
}


def section_chart(table: ReportTable) -> Chart | None:
    """The chart of a section: the funder page's, and for ``deadlines`` the median and
    p90 working days next to each call type's deadline; None without one or without
    rows."""
    if not table.rows:
        return None
    if table.grouping in CHARTS:
        return funder_chart(table)
    if table.grouping == "deadlines":
        keys = [str(r["key"]) for r in table.rows]
        return Chart("funder-deadlines", table.title, "", "working days", (
            Series("deadline", keys, [float(r["deadline_working_days"]) for r in table.rows],
                   "bar"),
            Series("median", keys, [r["median_working_days"] or 0.0 for r in table.rows],
                   "bar"),
            Series("p90", keys, [r["p90_working_days"] or 0.0 for r in table.rows], "bar"),
        ), kind="category", horizontal=True)
    return None


def cell(value: Any, col: Column) -> str:
    """A table cell as the portal shows it (shares in %, hours with separators)."""
    if value is None:
        return DASH
    if col.key.endswith("share"):
        return fmt_pct(float(value), 1)
    if col.numeric and isinstance(value, int | float):
        return fmt_hours(float(value), col.digits)
    return str(value)


def summary(fig: Figure) -> str:
    """The headline figure of a section in one line."""
    t = fig.table.totals
    name = fig.table.grouping
    if name == "fair-access":
        return (f"{t['periods_with_demand']} award periods with demand received "
                f"{fmt_pct(t['received_share'], 1)} of their awarded GPU-hours (lowest "
                f"{fmt_pct(t['lowest_share'], 1)}); {t['periods_without_demand']} without "
                "demand")
    if name == "fair-access-kind":
        return "; ".join(
            f"{r['kind']}: {fmt_pct(r['received_share'], 1)} received, p90 wait "
            f"{DASH if r['p90_wait_h'] is None else format(r['p90_wait_h'], '.1f') + ' h'}"
            for r in fig.table.rows) or "no data in this year"
    if name == "kind":
        return (f"SME + startup share: {fmt_pct(t['sme_startup_awarded_share'], 1)} of "
                f"awarded, {fmt_pct(t['sme_startup_used_share'], 1)} of used GPU-hours")
    if name == "capacity":
        if not t.get("capacity_gpu_hours"):
            return "capacity unknown (no nodes in the inventory)"
        return (f"{fmt_hours(t['capacity_gpu_hours'])} GPU-hours of capacity "
                f"({t['total_gpus']} GPUs): {fmt_pct(t['awarded_capacity_share'], 1)} "
                f"awarded, {fmt_pct(t['used_capacity_share'], 1)} used")
    if "awarded_gpu_hours" in t:
        return (f"{fmt_hours(t['awarded_gpu_hours'])} awarded, "
                f"{fmt_hours(t['used_gpu_hours'])} used GPU-hours")
    if name == "people":
        return (f"{t['projects']} active projects, {t['members']} members, "
                f"{t['users_with_runs']} users with runs")
    if name == "decisions" and t.get("decided"):
        return f"{t['decided']} decided, median {t['median_days']:.1f} days"
    if name == "deadlines" and t.get("decided"):
        return (f"{t['decided']} decided, {t['on_time']} on time, {t['late']} late, "
                f"{t['no_deadline']} without a deadline recorded")
    if name == "energy":
        return (f"{fmt_hours(t['energy_kwh'])} kWh ({fmt_hours(t['measured_kwh'])} "
                f"measured, {fmt_hours(t['estimated_kwh'])} estimated), "
                f"{fmt_hours(t['co2_kg'])} kg CO2e, {t.get('basis') or 'estimated'}")
    return "no data in this year" if not fig.table.rows else ""


# --------------------------------------------------------------------------- HTML


def html_context(yearly: YearlyReport, generated_at: datetime, *,
                 with_charts: bool = True) -> dict[str, Any]:
    figures = []
    for f in yearly.figures:
        chart = section_chart(f.table) if with_charts else None
        figures.append({"table": f.table, "basis": f.basis, "source": f.source,
                        "summary": summary(f),
                        "rows": [[cell(r.get(c.key), c) for c in f.table.columns]
                                 for r in f.table.rows],
                        "chart_svg": chart_svg(chart) if chart is not None else None})
    return {"yearly": yearly, "year": yearly.year, "figures": figures,
            "generated_at": generated_at, "basis_text": BASIS_TEXT,
            "notes": (funder.AWARD_NOTE, funder.ENERGY_NOTE)}


def document_html(yearly: YearlyReport, generated_at: datetime) -> str:
    """The standalone HTML document (styles inline, no links into the portal)."""
    return render_html("reports/yearly_document.html", html_context(yearly, generated_at))


# --------------------------------------------------------------------------- PDF


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _title_page(pdf: Any, yearly: YearlyReport, generated_at: datetime) -> None:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=A4)
    fig.text(0.08, 0.86, "Rechenwerk", fontsize=14, color="#5d6778")
    fig.text(0.08, 0.80, f"Yearly report {yearly.year}", fontsize=26, weight="bold")
    fig.text(0.08, 0.76, f"Calendar year {yearly.year}: 1 January to 31 December (UTC), "
             "the whole centre", fontsize=11)
    fig.text(0.08, 0.735, f"Generated {generated_at:%Y-%m-%d %H:%M} UTC", fontsize=9,
             color="#5d6778")
    y = 0.68
    fig.text(0.08, y, "Every figure is labelled", fontsize=11, weight="bold")
    for basis in (MEASURED, ESTIMATED):
        y -= 0.03
        fig.text(0.10, y, _wrap(BASIS_TEXT[basis], 90), fontsize=9, va="top")
    y -= 0.05
    fig.text(0.08, y, "Contents", fontsize=11, weight="bold")
    for f in yearly.figures:
        y -= 0.024
        fig.text(0.10, y, f"{f.table.title}", fontsize=9)
        fig.text(0.80, y, f.basis, fontsize=9,
                 color="#b3261e" if f.basis == ESTIMATED else "#2e9d5b")
    y -= 0.045
    for note in (funder.AWARD_NOTE, funder.ENERGY_NOTE):
        fig.text(0.08, y, _wrap(note, 100), fontsize=8, va="top", color="#1d2330")
        y -= 0.05
    pdf.savefig(fig)


def _table_page(pdf: Any, f: Figure, rows: list[dict[str, Any]], part: str) -> None:
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.transforms import Bbox

    chart = section_chart(f.table) if not part else None
    fig = MplFigure(figsize=A4, layout="constrained")
    top: Any = fig
    bottom: Any = None
    if chart is not None:
        parts: Any = fig.subfigures(2, 1, height_ratios=(1.15, 1.0))
        top, bottom = parts[0], parts[1]
    ax = top.add_subplot()
    ax.axis("off")
    ax.set_title(f"{f.table.title}{part}", loc="left", fontsize=13, weight="bold")
    head = _wrap(f"Basis: {f.basis}. {summary(f)}", 110) + "\n" + _wrap(
        f"Source: {f.source}", 110)
    ax.text(0, 1.0, head, transform=ax.transAxes, va="top", fontsize=8,
            color="#b3261e" if f.basis == ESTIMATED else "#1d2330")
    if rows:
        cols = f.table.columns
        # rows of a fixed height from the top (the header two rows high), not stretched
        top_y = 0.84 if chart is not None else 0.93
        height = min(top_y, (len(rows) + 2) * (0.06 if chart is not None else 0.028))
        table = ax.table(
            cellText=[[cell(r.get(c.key), c) for c in cols] for r in rows],
            colLabels=[_wrap(c.label, 14) for c in cols],
            cellLoc="right", colLoc="center",
            bbox=Bbox.from_bounds(0.0, top_y - height, 1.0, height))
        table.auto_set_font_size(False)
        table.set_fontsize(6.5 if len(cols) > 6 else 7.5)
        for (r, _), c in table.get_celld().items():
            if r == 0:
                c.set_facecolor("#e3e6eb")
    else:
        ax.text(0, 0.8, "No data in this year.", transform=ax.transAxes, fontsize=10)
    if chart is not None and bottom is not None:
        draw_chart(bottom, chart)
    pdf.savefig(fig)


def document_pdf(yearly: YearlyReport, generated_at: datetime) -> bytes:
    """A title page, then each section's table (``ROWS_PER_PAGE`` rows a page) with its
    chart below its first page."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    style = chart_style(Chart("yearly", "", "", "", ()))
    with DRAW_LOCK, matplotlib.rc_context(style), PdfPages(buf) as pdf:
        info = pdf.infodict()
        info["Title"] = f"Rechenwerk yearly report {yearly.year}"
        info["Subject"] = "Funder report figures for a calendar year, measured or estimated"
        info["CreationDate"] = generated_at
        _title_page(pdf, yearly, generated_at)
        for f in yearly.figures:
            rows = f.table.rows
            chunks = [rows[i:i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)]
            for i, chunk in enumerate(chunks or [[]]):
                _table_page(pdf, f, chunk,
                            "" if i == 0 else f" (continued, {i + 1} of {len(chunks)})")
    return buf.getvalue()

