"""A pay-per-use account's monthly statement as a PDF (matplotlib's PdfPages, already a
dependency): the header with the account, the month and the balances, then every charged
run, 32 to a page, and the totals; the same figures as the CSV and the portal page."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rechenwerk.accounting.pay_per_use import eur_plain, price_text
from rechenwerk.jobs.statements import Statement

ROWS_PER_PAGE = 32
COLUMNS = ("job", "name", "user", "GPU type", "GPUs", "ended (UTC)", "GPU-hours",
           "EUR / GPU-h", "EUR")


def rows_of(st: Statement) -> list[list[str]]:
    """The table's rows, as printed (the CSV's figures)."""
    return [[str(line.job_id) if line.job_id is not None else "-", line.job_name[:24],
             line.user, line.gpu_type, str(line.gpus), f"{line.ended_at:%Y-%m-%d %H:%M}",
             str(line.gpu_hours), price_text(line.price_e4), eur_plain(line.amount_cents)]
            for line in st.lines]


def summary_of(st: Statement) -> str:
    """The first page's line of balances."""
    return (f"Credit limit {eur_plain(st.credit_limit_cents)} EUR    "
            f"Opening balance {eur_plain(st.opening_cents)} EUR    "
            f"Charged {eur_plain(st.total_cents)} EUR for {st.total_gpu_hours} "
            f"GPU-hours in {len(st.lines)} runs    "
            f"Closing balance {eur_plain(st.closing_cents)} EUR")


def statement_pdf(st: Statement, generated_at: datetime | None = None) -> bytes:
    """The statement's PDF bytes (A4 portrait pages)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    rows = rows_of(st)
    pages = [rows[i:i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)] or [[]]
    out = io.BytesIO()
    with PdfPages(out, metadata={"Title": f"Statement {st.project} {st.month}",
                                 "Creator": "Rechenwerk"}) as pdf:
        for n, chunk in enumerate(pages, 1):
            fig = Figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.95, f"Pay-per-use statement · {st.project} · {st.month}",
                     fontsize=14, weight="bold")
            fig.text(0.06, 0.925, f"Account {st.account_id} · {st.starts_at:%Y-%m-%d} to "
                     f"{st.ends_at:%Y-%m-%d} (UTC) · page {n} of {len(pages)} · made {when}",
                     fontsize=8, color="#555555")
            if n == 1:
                fig.text(0.06, 0.89, summary_of(st), fontsize=8.5, wrap=True)
            ax = fig.add_axes((0.04, 0.08, 0.92, 0.78))
            ax.axis("off")
            if chunk:
                table = ax.table(cellText=chunk, colLabels=COLUMNS, loc="upper center",
                                 cellLoc="left", colLoc="left")
                table.auto_set_font_size(False)
                table.set_fontsize(7)
                table.scale(1, 1.25)
            else:
                ax.text(0.0, 0.95, "No run was charged in this month.", fontsize=10)
            if n == len(pages):
                fig.text(0.06, 0.05, f"Total: {st.total_gpu_hours} GPU-hours, "
                         f"{eur_plain(st.total_cents)} EUR. Closing balance "
                         f"{eur_plain(st.closing_cents)} EUR.", fontsize=9, weight="bold")
            pdf.savefig(fig)
    return out.getvalue()
