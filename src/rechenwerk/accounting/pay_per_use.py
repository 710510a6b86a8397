"""The live EUR balance of a pay-per-use account, mirroring the award balance::

    remaining = credit limit - settled - committed

*settled* is what finished runs were charged (GPU-hours x the price the job was accepted
at, stored per run when it is settled, :mod:`rechenwerk.accounting.charging`);
*committed* what the account's pending, starting, running and preempted jobs may still
cost (GPUs x walltime x price each). Money is integer: prices in 1/10,000 EUR per
GPU-hour (``e4``), amounts in cents, each run's and each job's amount rounded half up
once. The account's own columns are floats (operators' input); they are converted
exactly here (``repr`` of the float, i.e. what the operator typed).

As for awards, accounting does not import the jobs table: the jobs domain registers
the SQL of its commitments (:func:`register_account_commitments`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import PayPerUseAccount
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import BudgetExceeded, InvalidInput

E4 = 10_000  # price unit: 1/10,000 EUR per GPU-hour
_US_PER_HOUR = 3_600_000_000


class CommittedAccountRows(Protocol):
    """SQL of an account's live jobs: rows ``(gpus, walltime_s, price_e4, count)``."""

    def __call__(self, account_id: Any) -> Any: ...


_commitments: list[CommittedAccountRows] = []


def register_account_commitments(source: CommittedAccountRows) -> None:
    """Set the SQL of the jobs committed against an account (the jobs domain does)."""
    _commitments[:] = [source]


def _committed_source() -> CommittedAccountRows:
    if not _commitments:
        importlib.import_module("rechenwerk.store.tables")  # loads the jobs models
    if not _commitments:
        raise RuntimeError(
            "no source of pay-per-use commitments is registered "
            "(rechenwerk.accounting.pay_per_use.register_account_commitments)"
        )
    return _commitments[0]


# --------------------------------------------------------------------------- arithmetic


def _div_half_up(num: int, den: int) -> int:
    """``num / den`` rounded half up (both non-negative), in integers."""
    return (2 * num + den) // (2 * den)


def price_e4(eur_per_gpu_hour: float) -> int:
    """An operator's price (a float as typed) in 1/10,000 EUR, exactly."""
    return int((Decimal(repr(float(eur_per_gpu_hour))) * E4).to_integral_value(ROUND_HALF_UP))


def cents(eur: float) -> int:
    """An operator's amount in EUR (a float as typed) in cents, exactly."""
    return int((Decimal(repr(float(eur))) * 100).to_integral_value(ROUND_HALF_UP))


def job_max_cents(gpus: int, walltime_s: int, price: int) -> int:
    """What one job may cost at most: GPUs x walltime x price, in cents."""
    return _div_half_up(gpus * walltime_s * price, 3600 * E4 // 100)


def run_cents(gpus: int, started_at: datetime, ended_at: datetime, price: int) -> int:
    """What one run cost: GPUs x its (exact, microsecond) duration x price, in cents."""
    micros = max(0, (ended_at - started_at) // timedelta(microseconds=1))
    return _div_half_up(gpus * micros * price, _US_PER_HOUR * E4 // 100)


def eur(amount_cents: int) -> str:
    """Cents as EUR with a thousands separator: ``2500000`` -> ``25,000.00``."""
    sign = "-" if amount_cents < 0 else ""
    whole, rest = divmod(abs(amount_cents), 100)
    return f"{sign}{whole:,}.{rest:02d}"


def eur_plain(amount_cents: int) -> str:
    """Cents as a plain decimal string for machines (JSON, CSV): ``2500000`` -> ``25000.00``."""
    return f"{Decimal(amount_cents) / 100:.2f}"


def price_text(price: int) -> str:
    """A price in 1/10,000 EUR with 2 to 4 decimals: ``21000`` -> ``2.10``."""
    text = f"{Decimal(price) / E4:.4f}"
    return text[:-2] + text[-2:].rstrip("0")


def hours_text(seconds: int) -> str:
    """Walltime in hours without trailing zeros: 86400 -> ``24``, 5400 -> ``1.5``."""
    return f"{Decimal(seconds) / 3600:.4f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------- balance


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: int
    project: str
    at: datetime
    is_active: bool
    credit_limit_cents: int
    settled_cents: int
    committed_cents: int

    @property
    def remaining_cents(self) -> int:
        return self.credit_limit_cents - self.settled_cents - self.committed_cents

    def describe(self) -> str:
        return (
            f"account {self.account_id} ({self.project}) has "
            f"{eur(self.remaining_cents)} EUR left (limit {eur(self.credit_limit_cents)}, "
            f"settled {eur(self.settled_cents)}, committed {eur(self.committed_cents)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Money as exact decimal strings (EUR) and integer cents, never floats."""
        out: dict[str, Any] = {
            "account_id": self.account_id,
            "project": self.project,
            "at": self.at.isoformat(),
            "is_active": self.is_active,
        }
        for name in ("credit_limit", "settled", "committed", "remaining"):
            value = getattr(self, f"{name}_cents")
            out[f"{name}_eur"] = eur_plain(value)
            out[f"{name}_cents"] = value
        return out


def settled_cents(session: Session, account_id: int, *, before: datetime | None = None) -> int:
    stmt = select(func.coalesce(func.sum(UsageRecord.amount_cents), 0)).where(
        UsageRecord.account_id == account_id
    )
    if before is not None:
        stmt = stmt.where(UsageRecord.ended_at < before)
    return int(session.scalar(stmt) or 0)


def committed_cents(session: Session, account_id: int) -> int:
    rows = session.execute(_committed_source()(account_id)).all()
    return sum(int(n) * job_max_cents(int(g), int(w), int(p or 0)) for g, w, p, n in rows)


def account_balance(session: Session, account: PayPerUseAccount, at: datetime) -> AccountBalance:
    session.flush()
    return AccountBalance(
        account_id=account.id,
        project=account.project.slug,
        at=at,
        is_active=account.is_active,
        credit_limit_cents=cents(account.credit_limit_eur),
        settled_cents=settled_cents(session, account.id),
        committed_cents=committed_cents(session, account.id),
    )


def account_price(account: PayPerUseAccount, gpu_type: str | None) -> tuple[str, int]:
    """The account's GPU type (as the account spells it) and price for ``gpu_type``;
    InvalidInput naming ``gpu_type`` when the job names none or one without a price."""
    priced = ", ".join(
        f"{p.gpu_type} {price_text(price_e4(p.eur_per_gpu_hour))} EUR" for p in account.prices
    )
    if gpu_type is None:
        raise InvalidInput(
            f"jobs charged to pay-per-use account {account.id} ({account.project.slug}) "
            "must name their gpu_type: the price depends on it",
            field="gpu_type",
            hint=f"Add gpu_type to the spec; priced per GPU-hour: {priced}.",
        )
    for p in account.prices:
        if p.gpu_type.lower() == gpu_type.lower():
            return p.gpu_type, price_e4(p.eur_per_gpu_hour)
    raise InvalidInput(
        f"pay-per-use account {account.id} ({account.project.slug}) has no price for "
        f"GPU type {gpu_type!r}",
        field="gpu_type",
        hint=f"Priced per GPU-hour: {priced}; an operator can add a price "
        "(rechenwerk account update).",
    )


def check_credit(
    session: Session,
    account: PayPerUseAccount,
    *,
    gpus: int,
    walltime_s: int,
    gpu_type: str | None,
    tasks: int,
    at: datetime,
) -> int:
    """The price (e4) a new submission is charged at; BudgetExceeded with the arithmetic
    when the account's credit does not cover what it may cost."""
    _, price = account_price(account, gpu_type)
    one = job_max_cents(gpus, walltime_s, price)
    balance = account_balance(session, account, at)
    if tasks * one > balance.remaining_cents:
        what = (
            f"this job can cost up to {gpus} GPUs x {hours_text(walltime_s)} h x "
            f"{price_text(price)} EUR = {eur(one)} EUR"
        )
        if tasks > 1:
            what = (
                f"this array of {tasks} tasks can cost up to {tasks} x ({gpus} GPUs x "
                f"{hours_text(walltime_s)} h x {price_text(price)} EUR) = "
                f"{eur(tasks * one)} EUR"
            )
        raise BudgetExceeded(
            f"{what}; {balance.describe()}",
            field="project",
            hint="Use fewer GPUs or a shorter walltime, wait until running jobs settle "
            "their real (usually smaller) cost, or ask an operator to raise the credit "
            "limit.",
        )
    return price


# --------------------------------------------------------------------------- months


def parse_month(text: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as the UTC interval [first day, first day of the next month)."""
    try:
        year_s, month_s = text.split("-")
        year, month = int(year_s), int(month_s)
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    except ValueError:
        raise InvalidInput(
            f"month {text!r} is not YYYY-MM", field="month", hint="e.g. 2026-11"
        ) from None
    return start, end
