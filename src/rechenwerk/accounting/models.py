"""Accounting tables: what each job (attempt) really used, charged to an award period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from rechenwerk.store.base import Base, UTCDateTime


class UsageRecord(Base):
    """GPU-hours used by one run of a job (``job_id``, ``attempt``) or by one job imported
    from Slurm (``external_id``). Both keys are unique, so settling twice is a no-op."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt"),
        UniqueConstraint("external_id"),
        CheckConstraint("gpu_hours >= 0", name="gpu_hours_nonnegative"),
        Index("ix_usage_records_account_ended", "account_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    attempt: Mapped[int | None] = mapped_column(Integer)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    award_period_id: Mapped[int | None] = mapped_column(
        ForeignKey("award_periods.id", ondelete="SET NULL"), index=True
    )
    # A run charged to a pay-per-use account: the price per GPU-hour (EUR x 10^4) and
    # the amount (cents, rounded half up once, here) - integers, never float money.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("pay_per_use_accounts.id", ondelete="SET NULL")
    )
    price_e4_per_gpu_hour: Mapped[int | None] = mapped_column(Integer)
    amount_cents: Mapped[int | None] = mapped_column(Integer)
    gpu_type: Mapped[str | None] = mapped_column(String(64))
    cluster: Mapped[str | None] = mapped_column(String(32))  # where the run ran
    gpus: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gpu_hours: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    co2_kg: Mapped[float | None] = mapped_column(Float)
    # Where energy_kwh comes from: "measured" (metered IT energy: Slurm's ConsumedEnergy
    # or the local executor's NVML / RAPL counters, x the period's PUE) | "estimated"
    # (TDP model x PUE, charging.estimate_energy); NULL: no figure.
    energy_source: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # "local" | "slurm"
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How much of its GPUs the run used (execution/gpu_use.py, docs/jobs.md "GPU use"):
    # source "nvml" | "slurm"; all NULL: not measured, gpu_use_note says why if known.
    gpu_use_source: Mapped[str | None] = mapped_column(String(16))
    gpu_measured: Mapped[int | None] = mapped_column(Integer)  # GPUs measured
    gpu_util_mean_pct: Mapped[float | None] = mapped_column(Float)
    gpu_mem_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_idle_s: Mapped[float | None] = mapped_column(Float)  # GPU-seconds below threshold
    gpu_measured_s: Mapped[float | None] = mapped_column(Float)
    gpu_use_note: Mapped[str | None] = mapped_column(String(256))
