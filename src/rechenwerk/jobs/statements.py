"""Monthly statements of pay-per-use accounts: every run charged in the month (by its
end), with its job, user and price, the totals and the opening and closing balance.

Here, not in ``accounting/``: a statement names jobs and users, and accounting imports
no jobs. Money comes from the settled records (integer cents), never recomputed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import PayPerUseAccount, User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.pay_per_use import (
    cents,
    eur_plain,
    parse_month,
    price_text,
    settled_cents,
)
from rechenwerk.jobs.models import Job

_Q4 = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class StatementLine:
    job_id: int | None
    job_name: str
    user: str
    gpu_type: str
    gpus: int
    started_at: datetime
    ended_at: datetime
    price_e4: int
    amount_cents: int

    @property
    def hours(self) -> Decimal:
        micros = (self.ended_at - self.started_at) // timedelta(microseconds=1)
        return (Decimal(micros) / 3_600_000_000).quantize(_Q4)

    @property
    def gpu_hours(self) -> Decimal:
        micros = (self.ended_at - self.started_at) // timedelta(microseconds=1)
        return (Decimal(self.gpus * micros) / 3_600_000_000).quantize(_Q4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "user": self.user,
            "gpu_type": self.gpu_type,
            "gpus": self.gpus,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "hours": str(self.hours),
            "gpu_hours": str(self.gpu_hours),
            "eur_per_gpu_hour": price_text(self.price_e4),
            "amount_eur": eur_plain(self.amount_cents),
            "amount_cents": self.amount_cents,
        }


@dataclass(frozen=True, slots=True)
class Statement:
    account_id: int
    project: str
    month: str
    starts_at: datetime
    ends_at: datetime
    credit_limit_cents: int
    opening_cents: int  # credit left at the month's start (commitments not counted)
    lines: tuple[StatementLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def total_gpu_hours(self) -> Decimal:
        return sum((line.gpu_hours for line in self.lines), Decimal("0.0000"))

    @property
    def closing_cents(self) -> int:
        return self.opening_cents - self.total_cents

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "project": self.project,
            "month": self.month,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "credit_limit_eur": eur_plain(self.credit_limit_cents),
            "opening_balance_eur": eur_plain(self.opening_cents),
            "total_gpu_hours": str(self.total_gpu_hours),
            "total_eur": eur_plain(self.total_cents),
            "closing_balance_eur": eur_plain(self.closing_cents),
            "runs": len(self.lines),
            "items": [line.to_dict() for line in self.lines],
        }

    def to_csv(self) -> str:
        """The runs, then three summary rows (opening balance, total, closing balance)
        named in the first column; amounts as plain decimals (EUR)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for line in self.lines:
            d = line.to_dict()
            w.writerow([d[c] for c in CSV_COLUMNS])
        gap = [""] * (len(CSV_COLUMNS) - 2)
        w.writerow(["opening_balance", *gap, eur_plain(self.opening_cents)])
        w.writerow(["total", *gap[:7], str(self.total_gpu_hours), "", eur_plain(self.total_cents)])
        w.writerow(["closing_balance", *gap, eur_plain(self.closing_cents)])
        return out.getvalue()


CSV_COLUMNS = (
    "job_id",
    "job_name",
    "user",
    "gpu_type",
    "gpus",
    "started_at",
    "ended_at",
    "hours",
    "gpu_hours",
    "eur_per_gpu_hour",
    "amount_eur",
)


def account_statement(session: Session, account: PayPerUseAccount, month: str) -> Statement:
    """The statement of ``account`` for ``month`` (``YYYY-MM``, UTC)."""
    start, end = parse_month(month)
    session.flush()
    rows = session.execute(
        select(UsageRecord, Job.name, User.username)
        .outerjoin(Job, Job.id == UsageRecord.job_id)
        .outerjoin(User, User.id == Job.user_id)
        .where(
            UsageRecord.account_id == account.id,
            UsageRecord.ended_at >= start,
            UsageRecord.ended_at < end,
        )
        .order_by(UsageRecord.ended_at, UsageRecord.id)
    ).all()
    lines = tuple(
        StatementLine(
            job_id=r.job_id,
            job_name=name or "(deleted job)",
            user=username or "",
            gpu_type=r.gpu_type or "",
            gpus=r.gpus,
            started_at=r.started_at,
            ended_at=r.ended_at,
            price_e4=r.price_e4_per_gpu_hour or 0,
            amount_cents=r.amount_cents or 0,
        )
        for r, name, username in rows
    )
    limit = cents(account.credit_limit_eur)
    return Statement(
        account_id=account.id,
        project=account.project.slug,
        month=f"{start:%Y-%m}",
        starts_at=start,
        ends_at=end,
        credit_limit_cents=limit,
        opening_cents=limit - settled_cents(session, account.id, before=start),
        lines=lines,
    )
