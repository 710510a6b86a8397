"""Slurm's accounting import for Rechenwerk's own jobs.

:func:`rechenwerk.accounting.slurm_import.import_accounting` reads slurmdbd and settles
jobs submitted to Slurm directly; the jobs it finds that Rechenwerk submitted (Slurm
comment ``rechenwerk:<job id>.<attempt>`` and the job's handle is that Slurm id) come
here: the jobs service records Slurm's final word (real start/end, state, exit code)
and the run is settled once, keyed ``(job_id, attempt)``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.accounting.charging import record_gpu_use, record_measured_energy, settle_usage
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_import import (
    ImportReport,
    SettledRun,
    import_accounting,
    usage_for_run,
)
from rechenwerk.execution.base import BackendJobState, BackendRun
from rechenwerk.execution.slurm.backend import submitted_attempt, to_status
from rechenwerk.execution.slurm.types import SlurmJob, SlurmTransport
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.progress import apply_backend_status, never_started, settle_late_runs


def import_finished_jobs(
    session: Session,
    transport: SlurmTransport,
    *,
    now: datetime,
    since: datetime | None = None,
    accounts: list[str] | None = None,
    cluster: str | None = None,
) -> ImportReport:
    """Settle every finished Slurm job since ``since`` (default: 7 days) once. Several
    clusters: ``cluster`` is the one ``transport`` reaches; only its jobs are ours there
    (the same Slurm job id may exist on another cluster)."""

    def own(session: Session, sj: SlurmJob, *, now: datetime) -> SettledRun | None:
        return settle_own_job(session, sj, now=now, cluster=cluster)

    return import_accounting(
        session, transport, own_jobs=own, now=now, since=since, accounts=accounts
    )


def _rechenwerk_ref(comment: str) -> tuple[int, int] | None:
    """``"rechenwerk:42.1"`` -> (42, 1)."""
    if not comment.startswith("rechenwerk:"):
        return None
    ident, _, attempt = comment.removeprefix("rechenwerk:").partition(".")
    if ident.isdigit() and attempt.isdigit():
        return int(ident), int(attempt)
    return None


def slurm_handle(sj: SlurmJob) -> str:
    """The handle Rechenwerk stored for this Slurm job: its id, ``<array>_<index>`` for
    a task of a Slurm array."""
    if sj.array_job_id and sj.array_task_id is not None:
        return f"{sj.array_job_id}_{sj.array_task_id}"
    return sj.job_id


def our_job(session: Session, sj: SlurmJob, cluster: str | None = None) -> Job | None:
    """The Rechenwerk job behind a Slurm job: by the comment Rechenwerk sets
    (``rechenwerk:<id>.<attempt>``, stored with AccountingStoreFlags=job_comment) or, on
    clusters that do not store comments, by the persisted handle; with ``cluster``
    (several clusters) only a job handed to that cluster (or before clusters)."""
    job = _our_job(session, sj)
    if job is not None and cluster is not None and job.cluster not in (None, cluster):
        return None
    return job


def _our_job(session: Session, sj: SlurmJob) -> Job | None:
    ref = _rechenwerk_ref(sj.comment)
    handle = slurm_handle(sj)
    if sj.array_job_id:  # a task of a Slurm array: the comment names its array's first
        job = session.scalars(select(Job).where(  # task, the handle this task
            Job.backend == "slurm", Job.backend_handle == handle)
            .order_by(Job.id.desc())).first()
        if job is not None and (ref is None or job.attempt >= ref[1]):
            return job
        return None
    if ref is not None:
        job = session.get(Job, ref[0])
        # attempt >= the submitted one: Slurm may have requeued it under the same id
        if job is not None and job.backend_handle == sj.job_id and job.attempt >= ref[1]:
            return job
        return None
    return session.scalars(
        select(Job)
        .where(Job.backend == "slurm", Job.backend_handle == sj.job_id)
        .order_by(Job.id.desc())
    ).first()


def settle_own_job(session: Session, sj: SlurmJob, *, now: datetime,
                   cluster: str | None = None) -> SettledRun | None:
    """Bring a finished Slurm job Rechenwerk submitted to Slurm's final word and settle
    its run once; None when the Slurm job is not one of Rechenwerk's."""
    own = our_job(session, sj, cluster)
    if own is None or sj.start_time is None or sj.end_time is None:
        return None
    before = usage_for_run(session, own.id, own.attempt)
    # the jobs service records Slurm's final word and settles the run once
    apply_backend_status(session, own, to_status(sj, slurm_handle(sj)), now=now,
                         source="slurm")
    rec = usage_for_run(session, own.id, own.attempt)
    if rec is None and sj.backend_state == BackendJobState.CANCELLED and never_started(
            own.started_at, sj.start_time, sj.end_time):
        # cancelled before this run began (e.g. while Slurm requeued it): nothing ran,
        # nothing to settle; the runs before it are settled by their own attempts
        _measure_earlier_runs(session, own, sj, now=now)
        last = session.scalars(select(UsageRecord).where(UsageRecord.job_id == own.id)
                               .order_by(UsageRecord.attempt.desc())).first()
        if last is not None:
            return SettledRun(last, False, own.id)
    if rec is None:  # the job was already terminal without a settled run
        rec = settle_usage(
            session,
            project_id=own.project_id,
            gpus=own.gpus,
            started_at=sj.start_time,
            ended_at=sj.end_time,
            now=now,
            source="slurm",
            job_id=own.id,
            attempt=own.attempt,
            award_period_id=own.award_period_id,
            gpu_type=own.gpu_type,
            account_id=own.account_id,
            price_e4_per_gpu_hour=own.price_e4_per_gpu_hour,
            cluster=own.cluster,
        )
    # Slurm's measured energy replaces the estimate the live status settled with (once).
    record_measured_energy(rec, sj.consumed_energy_j)
    # Slurm's step usage reaches slurmdbd after the job ended: the run may have been
    # settled from the live status already, without GPU figures.
    record_gpu_use(rec, sj.gpu_use)
    _measure_earlier_runs(session, own, sj, now=now)
    return SettledRun(rec, before is None, own.id)


def _measure_earlier_runs(session: Session, own: Job, sj: SlurmJob, *,
                          now: datetime) -> None:
    """The runs Slurm requeued before the latest one (slurmdbd's records of them, oldest
    first, numbered from the attempt the comment names, as the poll settled them): their
    measured energy and GPU use replace what their records were settled with, once."""
    first = submitted_attempt(sj.comment)
    if first is None:
        return
    # a run nobody settled (Slurm requeued it before Rechenwerk saw it start, and
    # slurmdbd had no record of it while the job was live): settled now, once
    settle_late_runs(session, own, [
        BackendRun(first + i, run.start_time, run.end_time, measured=True)
        for i, run in enumerate(sj.earlier_runs)], now=now, source="slurm")
    for i, run in enumerate(sj.earlier_runs):
        rec = usage_for_run(session, own.id, first + i)
        if rec is not None:
            record_measured_energy(rec, run.consumed_energy_j)
            record_gpu_use(rec, run.gpu_use)
