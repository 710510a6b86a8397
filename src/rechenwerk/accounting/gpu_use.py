"""A job's GPU use as its users see it (job resource, ``rechenwerk job show``, the portal
job page): the figures of its last settled run (``usage_records``, written once per run
by :func:`rechenwerk.accounting.charging.record_gpu_use`) and the hint for a finished
job that left most of its GPUs idle. docs/jobs.md "GPU use" explains the figures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.execution.gpu_use import low_use_hint

# States in which a job's last run is over (jobs.states.TERMINAL_STATES, by value:
# accounting imports nothing of jobs).
_FINISHED = frozenset({"completed", "failed", "cancelled", "timeout"})


def job_gpu_use(
    session: Session, *, job_id: int, attempt: int, gpus: int, state: str
) -> dict[str, Any] | None:
    """The job's GPU use for its API resource; None for a job that never ran."""
    if attempt <= 0:
        return None
    rec = session.scalars(
        select(UsageRecord).where(UsageRecord.job_id == job_id, UsageRecord.attempt == attempt)
    ).first()
    if rec is None:
        note = "measured when the run ends" if state not in _FINISHED else "the run was not settled"
        return {"attempt": attempt, "measured": False, "note": note, "hint": None}
    return gpu_use_dict(rec, gpus=gpus, finished=state in _FINISHED)


def gpu_use_dict(rec: UsageRecord, *, gpus: int, finished: bool) -> dict[str, Any]:
    if rec.gpu_use_source is None or rec.gpu_util_mean_pct is None:
        return {
            "attempt": rec.attempt,
            "measured": False,
            "note": rec.gpu_use_note or "the backend reported no GPU figures",
            "hint": None,
        }
    return {
        "attempt": rec.attempt,
        "measured": True,
        "source": rec.gpu_use_source,
        "gpus_measured": rec.gpu_measured,
        "mean_util_pct": rec.gpu_util_mean_pct,
        "max_mem_bytes": rec.gpu_mem_max_bytes,
        "idle_gpu_hours": round((rec.gpu_idle_s or 0.0) / 3600.0, 4),
        "measured_s": rec.gpu_measured_s,
        "note": None,
        "hint": low_use_hint(rec.gpu_util_mean_pct, gpus) if finished else None,
    }
