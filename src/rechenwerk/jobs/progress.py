"""What backends report, applied to jobs: starts, ends (settled once per run against the
award period), preemptions and requeues (ours and the backend's own), failed launches.
The scheduler loop and the Slurm accounting import call these; every change goes
through ``jobs.transitions.transition``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Award, AwardPeriod
from rechenwerk.accounting.charging import measured_energy, settle_usage
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.execution.base import BackendJobState, BackendJobStatus, BackendRun
from rechenwerk.jobs.dependencies import REASON_NEVER, REASON_WAITING
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    JobState,
)
from rechenwerk.jobs.transitions import transition

_TERMINAL_MAP = {
    BackendJobState.COMPLETED: JobState.COMPLETED,
    BackendJobState.FAILED: JobState.FAILED,
    BackendJobState.CANCELLED: JobState.CANCELLED,
    BackendJobState.TIMEOUT: JobState.TIMEOUT,
}


def _settle(session: Session, job: Job, started: datetime | None, ended: datetime,
            *, now: datetime, source: str, status: BackendJobStatus | None = None) -> float:
    """Settle the run that just ended (with its GPU use, where the backend measured
    it); returns its GPU-seconds."""
    if started is None or job.attempt <= 0:
        return 0.0
    return _settle_run(session, job, job.attempt, started, ended, now=now, source=source,
                       status=status)


def apply_backend_status(
    session: Session, job: Job, status: BackendJobStatus, *, now: datetime,
    source: str = "local",
) -> bool:
    """Bring ``job`` in line with what the backend reports. Duplicate and late reports
    change nothing (guarded transitions). Returns True when the job changed."""
    state = JobState(job.state)
    if state in TERMINAL_STATES or state == JobState.PENDING:
        return False
    late = settle_late_runs(session, job, status.requeued_runs, now=now, source=source)
    return _apply(session, job, status, state, now=now, source=source) or late


def settle_late_runs(session: Session, job: Job, runs: Sequence[BackendRun], *,
                     now: datetime, source: str) -> bool:
    """Settle the earlier runs of ``job`` (attempts before its current one) that the
    backend's accounting has recorded since and that were never settled: a run Slurm
    requeued before Rechenwerk saw it start, while slurmdbd had no record of it yet.
    Keyed ``(job, attempt)`` as every run, so a run is never settled twice; its GPU time
    joins the job's attained time. Returns True when it settled one."""
    todo = [r for r in runs if r.measured and r.started_at is not None
            and r.ended_at is not None and 0 < r.attempt < job.attempt]
    if not todo:
        return False
    done = set(session.scalars(select(UsageRecord.attempt).where(
        UsageRecord.job_id == job.id, UsageRecord.attempt.in_([r.attempt for r in todo]))))
    used, settled = 0.0, False
    for run in todo:
        if run.attempt in done or run.started_at is None or run.ended_at is None:
            continue
        used += _settle_run(session, job, run.attempt, run.started_at, run.ended_at,
                            now=now, source=source)
        done.add(run.attempt)
        settled = True
    if used:
        job.attained_gpu_s = job.attained_gpu_s + used
    return settled


def _apply(session: Session, job: Job, status: BackendJobStatus, state: JobState, *,
           now: datetime, source: str) -> bool:
    if status.attempt is not None and status.attempt > job.attempt:
        return _requeued_by_backend(session, job, status, now=now, source=source)
    bstate = status.state
    if bstate == BackendJobState.PENDING:
        # "<how it got here>; <backend reason>" (see _requeued_by_backend) is the same
        # A job being cancelled keeps saying why (cancel requested, dependency never
        # satisfied) while the backend still lists it as waiting.
        if (status.reason and not (job.reason or "").endswith(status.reason)
                and state == JobState.STARTING and job.cancel_requested_at is None):
            reason = status.reason
            if (job.reason or "").startswith(_REQUEUED_PREFIXES):  # keep how it got here
                reason = f"{(job.reason or '').split('; ', 1)[0]}; {reason}"
            job.reason_code, job.reason = _backend_reason_code(status.reason), reason
            return True
        return False
    if bstate == BackendJobState.RUNNING:
        if state == JobState.STARTING:
            return transition(session, job, JobState.RUNNING, now=now, reason="running",
                              values={"started_at": status.started_at or now,
                                      "reason_code": None, "reason": None})
        return False
    ended = status.ended_at or now
    started = status.started_at or job.started_at
    if bstate in _TERMINAL_MAP:
        target = _TERMINAL_MAP[bstate]
        if target == JobState.CANCELLED and never_started(job.started_at, status.started_at,
                                                          status.ended_at):
            started = None  # cancelled before this run began: nothing to settle
        reason = status.reason or target.value
        if target == JobState.CANCELLED and job.cancel_requested_at is None:
            reason = status.reason or "cancelled outside Rechenwerk"
        code = None if target == JobState.COMPLETED else target.value
        if target == JobState.CANCELLED and job.reason_code == REASON_NEVER and job.reason:
            # Cancelled by the dependencies phase (jobs/dependencies.py): keep why.
            code, reason = REASON_NEVER, job.reason
        if not transition(session, job, target, now=now, reason=reason, values={
            "ended_at": ended, "started_at": started, "exit_code": status.exit_code,
            "reason_code": code,
            "reason": None if target == JobState.COMPLETED else reason,
        }):
            return False
        _settle(session, job, started, ended, now=now, source=source, status=status)
        return True
    if bstate == BackendJobState.PREEMPTED:
        return _requeue_after_preemption(session, job, started, ended, now=now,
                                         reason=status.reason or "preempted", source=source,
                                         status=status)
    if bstate == BackendJobState.UNKNOWN:
        reason = f"the {job.backend or 'execution'} backend no longer knows this job"
        if status.reason:
            reason += f" ({status.reason})"
        if not transition(session, job, JobState.FAILED, now=now, reason=reason, values={
            "ended_at": ended, "reason_code": "lost", "reason": reason,
        }):
            return False
        _settle(session, job, started, ended, now=now, source=source)
        return True
    return False


def never_started(seen: datetime | None, started: datetime | None,
                  ended: datetime | None) -> bool:
    """A run that ended before it began: Rechenwerk never saw it running (``seen``) and
    the backend reports no start, or one no earlier than its end (Slurm sets both to the
    time of the cancel for a job cancelled while it waited, e.g. again after a
    requeue)."""
    return seen is None and (started is None or (ended is not None and started >= ended))


def _backend_reason_code(reason: str) -> str:
    """``dependency`` (or ``dependency_never_satisfied``) while Slurm holds a job for its
    dependencies, as Rechenwerk's own queue says; ``backend`` for other reasons."""
    if reason.startswith("DependencyNeverSatisfied"):
        return REASON_NEVER
    if reason.startswith("Dependency"):
        return REASON_WAITING
    return "backend"


def _requeue_after_preemption(session: Session, job: Job, started: datetime | None,
                              ended: datetime, *, now: datetime, reason: str,
                              source: str, status: BackendJobStatus) -> bool:
    if not transition(session, job, JobState.PREEMPTED, now=now, reason=reason,
                      values={"ended_at": ended, "started_at": started}):
        return False
    used_gpu_s = _settle(session, job, started, ended, now=now, source=source,
                         status=status)
    if job.cancel_requested_at is not None:
        return transition(session, job, JobState.CANCELLED, now=now,
                          reason="cancelled while being preempted",
                          values={"reason_code": "cancelled", "reason": "cancelled"})
    return transition(session, job, JobState.PENDING, now=now, reason="requeued", values={
        "attained_gpu_s": job.attained_gpu_s + used_gpu_s,
        "backend_handle": None, "placement": None, "started_at": None, "ended_at": None,
        "exit_code": None, "reason_code": "requeued",
        "reason": f"requeued after preemption ({reason})",
    })


_REQUEUED_PREFIXES = ("requeued by ", "preempted and requeued by ")


def _requeued_by_backend(session: Session, job: Job, status: BackendJobStatus, *,
                         now: datetime, source: str) -> bool:
    """The backend ended the job's run(s) and requeued it under the same handle (Slurm:
    node failure, ``scontrol requeue``, its own preemption). Through the state machine:
    running -> preempted (each ended run settled once, with the backend's accounted
    times where it has them, else the start Rechenwerk saw and the end the backend
    implies) -> pending -> starting (same handle, ``attempt`` = the backend's), then the
    report itself is applied to the new attempt (it may be running or over already)."""
    assert status.attempt is not None
    runs = {r.attempt: r for r in status.requeued_runs}
    last = runs.get(status.attempt - 1)
    why = (last.reason if last and last.reason else "requeued").replace("_", " ").lower()
    preempting = job.reason_code == "preempting"
    label = f"{'preempted and ' if preempting else ''}requeued by {source} ({why})"
    current = runs.get(job.attempt)
    ended = (current.ended_at if current and current.ended_at else None) or now
    if not transition(session, job, JobState.PREEMPTED, now=now, reason=label,
                      values={"ended_at": ended}):
        return False
    used_gpu_s = 0.0
    for attempt in range(max(job.attempt, 1), status.attempt):
        run = runs.get(attempt)
        started = run.started_at if run and run.started_at else None
        if started is None and attempt == job.attempt:
            started = job.started_at  # the backend's start as Rechenwerk saw it running
        stopped = run.ended_at if run and run.ended_at else (
            ended if attempt == job.attempt else None)
        if started is None or stopped is None:
            continue  # a run nobody saw start: nothing to charge
        used_gpu_s += _settle_run(session, job, attempt, started, stopped, now=now,
                                  source=source)
    if (status.state == BackendJobState.CANCELLED
            and never_started(None, status.started_at, status.ended_at)):
        # Cancelled while Slurm requeued it (the run stopping, or waiting again): the job
        # ends here, at the attempt that ran; no run came after it.
        why = ("cancelled while being requeued" if job.cancel_requested_at is not None
               else status.reason or "cancelled outside Rechenwerk while being requeued")
        return transition(session, job, JobState.CANCELLED, now=now, reason=why, values={
            "attained_gpu_s": job.attained_gpu_s + used_gpu_s, "ended_at": ended,
            "reason_code": "cancelled", "reason": why})
    if not transition(session, job, JobState.PENDING, now=now, reason=label, values={
        "attained_gpu_s": job.attained_gpu_s + used_gpu_s, "started_at": None,
        "ended_at": None, "exit_code": None, "reason_code": "requeued", "reason": label,
    }):
        return False
    waiting = status.reason or f"waiting in {source}'s queue"
    if not transition(session, job, JobState.STARTING, now=now,
                      reason=f"{label}; {waiting}",
                      values={"attempt": status.attempt, "reason_code": "backend",
                              "reason": f"{label}; {waiting}"}):
        return False
    apply_backend_status(session, job, status, now=now, source=source)
    return True


def _settle_run(session: Session, job: Job, attempt: int, started: datetime,
                ended: datetime, *, now: datetime, source: str,
                status: BackendJobStatus | None = None) -> float:
    """Settle run ``attempt`` of ``job`` (once; keyed by job and attempt)."""
    gpu_type = job.gpu_type
    if gpu_type is None and job.award_period_id is not None:
        gpu_type = session.scalar(
            select(Award.gpu_type).join(AwardPeriod, AwardPeriod.award_id == Award.id)
            .where(AwardPeriod.id == job.award_period_id)
        )
    # Measured where the local executor read the run's energy counters (NVML, else
    # RAPL); otherwise estimated. A Slurm job's live status carries no ConsumedEnergy:
    # Slurm's accounting replaces the estimate later (jobs/slurm_import.py).
    energy = status.energy if status is not None else None
    kwh, co2 = measured_energy(energy.joules, at=started) if energy else (None, None)
    record = settle_usage(
        session, project_id=job.project_id, gpus=job.gpus, started_at=started,
        ended_at=ended, now=now, source=source, job_id=job.id, attempt=attempt,
        award_period_id=job.award_period_id, gpu_type=gpu_type,
        energy_kwh=kwh, co2_kg=co2, energy_measured=energy is not None,
        gpu_use=status.gpu_use if status is not None else None,
        gpu_use_note=status.gpu_use_note if status is not None else None,
        account_id=job.account_id, price_e4_per_gpu_hour=job.price_e4_per_gpu_hour,
        cluster=job.cluster,
    )
    return record.gpu_hours * 3600.0


def requeue_failed_launch(session: Session, job: Job, *, now: datetime, reason: str) -> bool:
    """The backend refused to start the job: put it back in the queue with the reason."""
    return transition(session, job, JobState.PENDING, now=now, reason=reason, values={
        "backend_handle": None, "placement": None, "reason_code": "launch_failed",
        "reason": reason,
    })


def active_jobs(session: Session) -> Sequence[Job]:
    return list(session.scalars(
        select(Job).where(Job.state.in_([s.value for s in ACTIVE_STATES])).order_by(Job.id)
    ))


