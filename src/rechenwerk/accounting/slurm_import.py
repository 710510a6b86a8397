"""Import finished jobs from Slurm's accounting (slurmdbd) and settle their usage.

For every finished allocation in ``sacct``/``/slurmdb/.../jobs`` whose account is a
project slug:

* a job Rechenwerk submitted is handed to ``own_jobs`` (the jobs domain:
  :func:`rechenwerk.jobs.slurm_import.settle_own_job` brings the job to Slurm's final
  word and settles its run once, keyed ``(job_id, attempt)``);
* any other job (submitted to Slurm directly under the project's account) is settled
  with ``gpus = AllocTRES gres/gpu`` and Slurm's real start/end, keyed
  ``external_id = "slurm:<cluster>:<job id>"``.

The entry point with Rechenwerk's own jobs is
:func:`rechenwerk.jobs.slurm_import.import_finished_jobs`.

Settlement goes through :func:`rechenwerk.accounting.charging.settle_usage`, which is
idempotent, so importing again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Project
from rechenwerk.accounting.charging import (
    measured_energy,
    record_gpu_use,
    record_measured_energy,
    settle_usage,
)
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.execution.base import TERMINAL_BACKEND_STATES
from rechenwerk.execution.slurm.types import SlurmJob, SlurmTransport

DEFAULT_WINDOW = timedelta(days=7)


@dataclass
class ImportedJob:
    slurm_job_id: str
    account: str
    user: str
    state: str
    gpus: int
    started_at: datetime
    ended_at: datetime
    gpu_hours: float
    rechenwerk_job_id: int | None
    new: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "slurm_job_id": self.slurm_job_id,
            "account": self.account,
            "user": self.user,
            "state": self.state,
            "gpus": self.gpus,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "gpu_hours": round(self.gpu_hours, 6),
            "rechenwerk_job_id": self.rechenwerk_job_id,
            "new": self.new,
        }


@dataclass
class ImportReport:
    examined: int = 0
    settled_new: int = 0
    already_settled: int = 0
    not_finished: int = 0
    unknown_account: int = 0
    no_gpus: int = 0
    jobs: list[ImportedJob] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "settled_new": self.settled_new,
            "already_settled": self.already_settled,
            "not_finished": self.not_finished,
            "unknown_account": self.unknown_account,
            "no_gpus": self.no_gpus,
            "jobs": [j.to_dict() for j in self.jobs],
        }


def external_id(job: SlurmJob) -> str:
    return f"slurm:{job.cluster or 'cluster'}:{job.job_id}"


@dataclass(frozen=True, slots=True)
class SettledRun:
    """What ``own_jobs`` did with a finished Slurm job Rechenwerk submitted."""

    record: UsageRecord
    new: bool  # settled now (False: it was settled before)
    job_id: int


class OwnJobs(Protocol):
    def __call__(self, session: Session, sj: SlurmJob, *, now: datetime) -> SettledRun | None:
        """Settle the finished Slurm job if Rechenwerk submitted it; None: not ours."""
        ...


def import_accounting(
    session: Session,
    transport: SlurmTransport,
    *,
    own_jobs: OwnJobs,
    now: datetime,
    since: datetime | None = None,
    accounts: list[str] | None = None,
) -> ImportReport:
    """Settle every finished Slurm job since ``since`` (default: 7 days) once."""
    report = ImportReport()
    start = since or (now - DEFAULT_WINDOW)
    # Filter accounts here, not in sacct: slurmdbd's account filter goes through the
    # association id, which a just-finished job may not carry yet (seen in 22.05).
    records = transport.accounted_jobs(start=start)
    if accounts is not None:
        wanted = set(accounts)
        records = [r for r in records if r.account in wanted]
    projects = {
        p.slug: p
        for p in session.scalars(
            select(Project).where(Project.slug.in_({r.account for r in records}))
        )
    }
    for sj in records:
        report.examined += 1
        if sj.backend_state not in TERMINAL_BACKEND_STATES or sj.end_time is None:
            report.not_finished += 1
            continue
        project = projects.get(sj.account)
        if project is None:
            report.unknown_account += 1
            continue
        if sj.start_time is None:  # cancelled while pending: nothing used
            report.no_gpus += 1
            continue
        own = own_jobs(session, sj, now=now)
        if own is not None:
            _count(report, sj, own.record, new=own.new, job_id=own.job_id)
            continue
        gpus = sj.gpus or 0
        if gpus <= 0:
            report.no_gpus += 1
            continue
        ext = external_id(sj)
        existing = session.scalars(
            select(UsageRecord).where(UsageRecord.external_id == ext)
        ).first()
        rec = existing or settle_usage(
            session,
            project_id=project.id,
            gpus=gpus,
            started_at=sj.start_time,
            ended_at=sj.end_time,
            now=now,
            source="slurm",
            external_id=ext,
            **_measured(sj),
            gpu_use=sj.gpu_use,
        )
        if existing is not None:
            record_gpu_use(existing, sj.gpu_use)
            record_measured_energy(existing, sj.consumed_energy_j)
        _count(report, sj, rec, new=existing is None, job_id=None)
    return report


def _measured(sj: SlurmJob) -> dict[str, Any]:
    """settle_usage's energy arguments: Slurm's ConsumedEnergy where it recorded one
    (kWh = J / 3.6e6 x the PUE of the run's period, CO2 with the estimate's grid); else
    none (estimated, if it can)."""
    if sj.consumed_energy_j is None:
        return {"energy_measured": False}
    kwh, co2 = measured_energy(sj.consumed_energy_j, at=sj.start_time)
    return {"energy_kwh": kwh, "co2_kg": co2, "energy_measured": True}


def usage_for_run(session: Session, job_id: int, attempt: int) -> UsageRecord | None:
    return session.scalars(
        select(UsageRecord).where(UsageRecord.job_id == job_id, UsageRecord.attempt == attempt)
    ).first()


def _count(
    report: ImportReport, sj: SlurmJob, rec: UsageRecord, *, new: bool, job_id: int | None
) -> None:
    if new:
        report.settled_new += 1
    else:
        report.already_settled += 1
    report.jobs.append(
        ImportedJob(
            slurm_job_id=sj.job_id,
            account=sj.account,
            user=sj.user,
            state=sj.state,
            gpus=rec.gpus,
            started_at=rec.started_at,
            ended_at=rec.ended_at,
            gpu_hours=rec.gpu_hours,
            rechenwerk_job_id=job_id,
            new=new,
        )
    )
