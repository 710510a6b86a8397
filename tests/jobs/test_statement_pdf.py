"""The statement PDF: one page per 32 runs, the statement's figures in its rows and its
line of balances, an empty month on one page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rechenwerk.jobs.statement_pdf import ROWS_PER_PAGE, rows_of, statement_pdf, summary_of
from rechenwerk.jobs.statements import Statement, StatementLine

T = datetime(2026, 3, 1, tzinfo=UTC)


def _statement(n: int) -> Statement:
    lines = tuple(StatementLine(job_id=100 + i, job_name=f"run-{i}", user="sofia",
                                gpu_type="A100-80GB", gpus=2, started_at=T + timedelta(hours=i),
                                ended_at=T + timedelta(hours=i, minutes=30), price_e4=16000,
                                amount_cents=160) for i in range(n))
    return Statement(account_id=7, project="alpenwerk-cfd", month="2026-03", starts_at=T,
                     ends_at=datetime(2026, 4, 1, tzinfo=UTC), credit_limit_cents=2_500_000,
                     opening_cents=2_400_000, lines=lines)


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b", pdf))


def test_pages_and_figures() -> None:
    st = _statement(ROWS_PER_PAGE + 3)
    pdf = statement_pdf(st)
    assert pdf.startswith(b"%PDF-") and _pages(pdf) == 2
    assert rows_of(st)[34] == ["134", "run-34", "sofia", "A100-80GB", "2",
                               "2026-03-02 10:30", "1.0000", "1.60", "1.60"]
    assert summary_of(st) == ("Credit limit 25000.00 EUR    Opening balance 24000.00 EUR    "
                              "Charged 56.00 EUR for 35.0000 GPU-hours in 35 runs    "
                              "Closing balance 23944.00 EUR")


def test_an_empty_month() -> None:
    st = _statement(0)
    assert _pages(statement_pdf(st)) == 1 and rows_of(st) == []
