"""Job service: submit (validate, authorise, budget, idempotency), look up, cancel, and
apply what backends report — every state change through one guarded update.

Functions take ``*, session`` (or ``session`` first) and never commit; the API request,
the CLI wrapper or the scheduler loop owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from rechenwerk.access.models import Award, AwardPeriod, Project, ProjectMembership, User
from rechenwerk.access.projects import (
    check_role,
    get_project,
    require_project_role,
    visible_project,
)
from rechenwerk.access.visibility import can_see_project, only_visible
from rechenwerk.accounting.balance import Balance, balance_from_rows, balance_stmt
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import BudgetExceeded, InvalidInput, InvalidTransition, NotFound
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.jobs.models import Job, JobEvent, NodeState
from rechenwerk.jobs.policy_config import qos_limits
from rechenwerk.jobs.specs import JobSpec, check_against_centre, check_walltime
from rechenwerk.jobs.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    JobState,
    can_transition,
)
from rechenwerk.jobs.wakeup import wake_after_commit

SUBMIT_ROLES = frozenset({"pi", "member"})


# --------------------------------------------------------------------------- centre shape


@dataclass(frozen=True, slots=True)
class CentreShape:
    total_gpus: int
    max_gpus_per_node: int
    node_count: int


@lru_cache(maxsize=8)
def _local_shape(cluster: str) -> CentreShape:
    from rechenwerk.execution.local import parse_local_cluster

    nodes = parse_local_cluster(cluster)
    return CentreShape(sum(n.gpus for n in nodes), max(n.gpus for n in nodes), len(nodes))


def centre_shape(settings: Settings) -> CentreShape | None:
    """The size of the centre submissions are checked against (None: the backend checks,
    e.g. Slurm refuses impossible requests itself)."""
    if settings.executor == "local":
        return _local_shape(settings.local_cluster)
    return None


# --------------------------------------------------------------------------- submit


@dataclass(frozen=True, slots=True)
class SubmitResult:
    job: Job
    created: bool  # False: the idempotency key matched an earlier submission
    project: str  # slug of the job's project


@dataclass(frozen=True, slots=True)
class _SubmitProject:
    """The project as the submit path reads it: id and slug (a :class:`ProjectRef`)."""

    id: int
    slug: str


def _project_stmt(by_id: bool, lock: bool) -> Any:
    """Core, not ORM entities: the submit path needs the project's id and slug and the
    user's role, and loading two mapped objects per submission cost ~15% of its CPU."""
    ref = Project.id == bindparam("ref_id") if by_id else Project.slug == bindparam("ref")
    stmt = (
        select(Project.id, Project.slug, ProjectMembership.role)
        .outerjoin(ProjectMembership, (ProjectMembership.project_id == Project.id)
                   & (ProjectMembership.user_id == bindparam("user_id")))
        .where(ref)
    )
    return stmt.with_for_update(of=Project.__table__) if lock else stmt


# Statements of the submit path, built once: building a statement and its cache key on
# every request costs more CPU than executing it (SQLAlchemy memoises both per object).
_PROJECT_STMTS = {(by_id, lock): _project_stmt(by_id, lock)
                  for by_id in (False, True) for lock in (False, True)}
# Core (id only): the key is new for nearly every submission; a replay loads the job.
_IDEMPOTENT_STMT = select(Job.id).where(Job.user_id == bindparam("user_id"),
                                        Job.idempotency_key == bindparam("key")).limit(1)


@lru_cache(maxsize=1)
def _balance_and_key_stmt() -> Any:
    """:func:`balance_stmt` plus the id of the user's job with idempotency key ``:key``
    (NULL when none, or when ``:key`` is NULL) on every row."""
    existing = _IDEMPOTENT_STMT.scalar_subquery().label("existing_job_id")
    return balance_stmt().add_columns(existing)


# Core inserts on the tables (not the ORM-enabled bulk insert of the mapped classes).
_JOBS_TABLE = cast(Table, Job.__table__)
_INSERT_JOB = insert(_JOBS_TABLE).returning(_JOBS_TABLE.c.id)
_INSERT_EVENT = insert(cast(Table, JobEvent.__table__))
# Column defaults of jobs, for the in-memory copy of a row inserted with Core.
_JOB_DEFAULTS: dict[str, Any] = {
    c.key: (getattr(c.default, "arg", None) if c.default is not None and c.default.is_scalar
            else None)
    for c in _JOBS_TABLE.columns if not c.primary_key
}


def _get_project_for_update(
    session: Session, ref: str, user: User
) -> tuple[_SubmitProject, str | None]:
    """The project (row-locked on PostgreSQL) and the user's role in it (None: not a
    member), in one round trip."""
    by_id = ref.isdigit()
    lock = session.get_bind().dialect.name == "postgresql"
    params = {"ref_id": int(ref)} if by_id else {"ref": ref}
    session.flush()  # Core statements do not autoflush (a no-op when nothing is pending)
    row = session.connection().execute(
        _PROJECT_STMTS[by_id, lock], {**params, "user_id": user.id}).first()
    if row is None:
        get_project(session, ref)  # raises the platform's NotFound
        raise AssertionError("unreachable: the project exists but was not selected")
    return _SubmitProject(row[0], row[1]), row[2]


@lru_cache(maxsize=16)
def _insert_job_and_event_stmt(columns: frozenset[str]) -> Any:
    """PostgreSQL: the job and its first event in ONE statement (one round trip)::

        WITH j AS (INSERT INTO jobs (...) VALUES (...) RETURNING id)
        INSERT INTO job_events (...) SELECT j.id, ... FROM j RETURNING job_id

    One statement per set of non-NULL columns (a handful in practice), built once."""
    events = cast(Table, JobEvent.__table__)
    job = (insert(_JOBS_TABLE)
           .values({c: bindparam(c, type_=_JOBS_TABLE.c[c].type) for c in sorted(columns)})
           .returning(_JOBS_TABLE.c.id)
           .cte("new_job"))
    first_event = select(
        job.c.id,
        bindparam("submitted_at", type_=events.c.at.type),
        bindparam("state", type_=events.c.to_state.type),
        bindparam("event_reason", type_=events.c.reason.type),
    )
    return (insert(events)
            .from_select(["job_id", "at", "to_state", "reason"], first_event)
            .returning(events.c.job_id))


def _insert_job(session: Session, values: dict[str, Any], reason: str) -> Job:
    """INSERT the job and its first event with Core (no unit-of-work flush) and return
    the job as a persistent, clean object of ``session`` built from the same values (no
    reload: every column is known)."""
    row = {k: v for k, v in values.items() if v is not None}  # NULL, not JSON null
    conn = session.connection()  # the session's transaction
    if conn.dialect.name == "postgresql":
        stmt = _insert_job_and_event_stmt(frozenset(row))
        job_id = conn.execute(stmt, {**row, "event_reason": reason}).scalar_one()
    else:  # SQLite: no INSERT inside WITH; in-process, so a second statement is cheap
        job_id = conn.execute(_INSERT_JOB, row).scalar_one()
        conn.execute(_INSERT_EVENT, {"job_id": job_id, "at": values["submitted_at"],
                                        "from_state": None, "to_state": values["state"],
                                        "reason": reason})
    job = Job(id=job_id, **{**_JOB_DEFAULTS, **values})
    make_transient_to_detached(job)
    session.add(job)
    return job


def _budget_message(spec: JobSpec, project: _SubmitProject, balance: Balance,
                    available: float) -> str:
    return (
        f"job needs {spec.gpu_hours_requested:.2f} GPU-hours ({spec.gpus} GPUs x "
        f"{spec.walltime_s / 3600:.2f} h walltime) but project {project.slug!r} has "
        f"{available:.2f} GPU-hours available (awarded {balance.awarded_gpu_hours:.2f}, "
        f"used {balance.settled_gpu_hours:.2f}, committed by pending and running jobs "
        f"{balance.committed_gpu_hours:.2f})"
    )


def submit_job(
    session: Session,
    user: User,
    spec: JobSpec,
    *,
    clock: Clock,
    settings: Settings,
    shape: CentreShape | None = None,
) -> SubmitResult:
    """Validate, authorise, check the live balance and store the job as PENDING.

    A repeated submission with the same ``idempotency_key`` (per user) returns the first
    job and stores nothing."""
    # Resolve and (PostgreSQL) lock the project row in one statement: submissions of one
    # project are serialised so parallel clients cannot overdraw it. SQLite serialises
    # writers already (BEGIN IMMEDIATE in store/session.py).
    project, role = _get_project_for_update(session, spec.project, user)
    check_role(user, project.slug, role, SUBMIT_ROLES)
    shape = shape if shape is not None else centre_shape(settings)
    limits = qos_limits(settings)
    if shape is not None:
        check_against_centre(
            spec,
            total_gpus=shape.total_gpus,
            max_gpus_per_node=shape.max_gpus_per_node,
            node_count=shape.node_count,
            qos_limits=limits,
        )
    else:  # the backend checks the shape (Slurm refuses impossible requests itself)
        check_walltime(spec, limits)
    if spec.container_image and settings.executor == "local":
        raise InvalidInput(
            "the local executor runs processes directly and cannot run container images",
            field="container_image",
            hint="Remove container_image, or submit to a centre that runs Slurm.",
        )
    if spec.workdir is not None and not spec.workdir.startswith("/"):
        raise InvalidInput(
            f"workdir {spec.workdir!r} must be an absolute path on the server",
            field="workdir",
            hint="The CLI resolves relative paths against the spec file's directory.",
        )

    # One round trip after the lock: the balance's rows, each with the job already
    # stored under this idempotency key (if any). It runs after the lock is granted, so
    # (READ COMMITTED) it sees a same-key submission that committed while we waited.
    now = clock.now()
    rows = session.connection().execute(_balance_and_key_stmt(), {
        "project_id": project.id, "at": now,
        "user_id": user.id, "key": spec.idempotency_key}).all()
    if spec.idempotency_key is not None:
        existing_id = rows[0].existing_job_id if rows else session.connection().execute(
            _IDEMPOTENT_STMT, {"user_id": user.id, "key": spec.idempotency_key}).scalar()
        if existing_id is not None:
            existing = session.get(Job, existing_id)
            assert existing is not None
            return SubmitResult(existing, False, _project(session, existing).slug)

    balance = balance_from_rows(session, project, now, rows)
    if not balance.periods:
        if balance.expired_award:
            raise BudgetExceeded(
                f"project {project.slug!r} has no active award: its awards have expired",
                field="project",
                hint="Apply for a new award (rechenwerk proposal create) or ask an operator.",
            )
        raise BudgetExceeded(
            f"project {project.slug!r} has no award of GPU-hours",
            field="project",
            hint="A project needs an accepted proposal and an award before it can run jobs.",
        )
    period = balance.best_period(spec.gpu_type)
    if period is None:
        types = ", ".join(sorted({p.gpu_type for p in balance.periods}))
        raise BudgetExceeded(
            f"project {project.slug!r} has no active award for GPU type {spec.gpu_type!r}",
            field="gpu_type",
            hint=f"The project's awards cover: {types}.",
        )
    qos = spec.qos
    over_budget = False
    if spec.gpu_hours_requested > period.available_gpu_hours + 1e-9:
        message = _budget_message(spec, project, balance, period.available_gpu_hours)
        if settings.overdraft_policy != "low_qos":
            raise BudgetExceeded(
                message,
                hint="Use fewer GPUs or a shorter walltime, wait until running jobs settle "
                "their real (usually smaller) usage, or ask the PI for more GPU-hours.",
            )
        qos, over_budget = "low", True

    reason = "over budget: accepted in the low QOS" if over_budget else "submitted"
    job = _insert_job(session, dict(
        project_id=project.id,
        user_id=user.id,
        award_period_id=period.award_period_id,
        name=spec.name,
        spec=spec.to_document(),
        state=JobState.PENDING.value,
        qos=qos,
        requested_qos=spec.qos,
        over_budget=over_budget,
        gpus=spec.gpus,
        nodes=spec.nodes,
        gpus_per_node=spec.gpus_per_node,
        gpu_type=spec.gpu_type,
        walltime_s=spec.walltime_s,
        idempotency_key=spec.idempotency_key,
        reason_code="queued",
        reason="waiting for the next scheduling cycle",
        attempt=0,
        attained_gpu_s=0.0,
        submitted_at=now,
        updated_at=now,
    ), reason)
    wake_after_commit(session)
    return SubmitResult(job, True, project.slug)


def submit(session: Session, user: User, spec: JobSpec, *, clock: Clock,
           settings: Settings) -> Job:
    return submit_job(session, user, spec, clock=clock, settings=settings).job


# --------------------------------------------------------------------------- look up


def get_job(session: Session, user: User, job_id: int) -> Job:
    """The job if ``user`` may see it (member of its project, or operator)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found", field="job",
                       hint="List your jobs with `rechenwerk jobs`.")
    if not can_see_project(session, user, job.project_id):
        raise NotFound(f"job {job_id} not found", field="job",
                       hint="List your jobs with `rechenwerk jobs`.")
    return job


def _project(session: Session, job: Job) -> Project:
    project = session.get(Project, job.project_id)
    assert project is not None
    return project


def list_jobs(
    session: Session,
    user: User,
    *,
    project: str | int | None = None,
    states: Collection[str] = (),
    mine: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Jobs the user may see, newest first, and the total count."""
    stmt = select(Job)
    if project is not None:
        p = visible_project(session, user, project)
        stmt = stmt.where(Job.project_id == p.id)
    else:
        stmt = only_visible(stmt, Job.project_id, session, user)
    if states:
        bad = [s for s in states if s not in JobState.__members__.values()]
        if bad:
            raise InvalidInput(
                f"unknown job state {bad[0]!r}", field="state",
                hint="Use one of: " + ", ".join(s.value for s in JobState) + ".",
            )
        stmt = stmt.where(Job.state.in_(list(states)))
    if mine:
        stmt = stmt.where(Job.user_id == user.id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total)


def queue(session: Session, user: User, *, project: str | int | None = None) -> list[Job]:
    """Pending jobs by QOS (high, normal, low), then submission. The exact order of the
    policy (fair share, age, size, backfill) is in each job's persisted reason."""
    jobs, _ = list_jobs(session, user, project=project, states=("pending",), limit=100_000)
    rank = {"high": 0, "normal": 1, "low": 2}
    return sorted(jobs, key=lambda j: (rank.get(j.qos, 3), j.submitted_at, j.id))


def job_events(session: Session, job: Job) -> list[JobEvent]:
    return list(session.scalars(
        select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    ))


def usernames(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(list(ids))))
    return {int(i): str(n) for i, n in rows}


def project_slugs(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Project.id, Project.slug).where(Project.id.in_(list(ids))))
    return {int(i): str(n) for i, n in rows}


# --------------------------------------------------------------------------- transitions


def transition(
    session: Session,
    job: Job,
    target: JobState,
    *,
    now: datetime,
    reason: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move ``job`` to ``target`` if the table allows it from the state it has in the
    database: ``UPDATE jobs SET ... WHERE id = :id AND state = :current``. Returns False
    (and changes nothing) for a disallowed, duplicate or late transition."""
    source = JobState(job.state)
    if not can_transition(source, target):
        return False
    changes: dict[str, Any] = {"state": target.value, "updated_at": now, **dict(values or {})}
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == source.value)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.refresh(job)
        return False
    for key, value in changes.items():  # mirror the row without marking the object dirty
        set_committed_value(job, key, value)
    session.add(JobEvent(job_id=job.id, at=now, from_state=source.value,
                         to_state=target.value, reason=reason))
    return True


def cancel(session: Session, user: User, job_id: int, *, clock: Clock) -> Job:
    """Cancel a job: a pending one at once; a starting/running one is stopped by the
    scheduler loop (SIGTERM, grace period, SIGKILL) and ends as ``cancelled``."""
    job = get_job(session, user, job_id)
    if job.user_id != user.id and not user.is_operator:
        require_project_role(session, user, _project(session, job), {"pi"})
    now = clock.now()
    state = JobState(job.state)
    if state in TERMINAL_STATES:
        raise InvalidTransition(
            f"job {job.id} has already ended ({state})", field="job",
            hint="Only pending, starting or running jobs can be cancelled.",
        )
    if state in (JobState.PENDING, JobState.PREEMPTED):
        if transition(session, job, JobState.CANCELLED, now=now,
                      reason=f"cancelled by {user.username}",
                      values={"ended_at": now, "reason_code": "cancelled",
                              "reason": f"cancelled by {user.username}",
                              "cancel_requested_at": now}):
            wake_after_commit(session)
            return job
        state = JobState(job.state)  # it moved meanwhile; fall through
    if state in ACTIVE_STATES:
        changes = {"cancel_requested_at": now, "reason_code": "cancelling",
                   "reason": f"cancel requested by {user.username}", "updated_at": now}
        result = session.execute(
            update(Job).where(Job.id == job.id, Job.cancel_requested_at.is_(None))
            .values(**changes).execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            for key, value in changes.items():
                set_committed_value(job, key, value)
            wake_after_commit(session)
    return job


# --------------------------------------------------------------------------- backend status


_TERMINAL_MAP = {
    BackendJobState.COMPLETED: JobState.COMPLETED,
    BackendJobState.FAILED: JobState.FAILED,
    BackendJobState.CANCELLED: JobState.CANCELLED,
    BackendJobState.TIMEOUT: JobState.TIMEOUT,
}


def _settle(session: Session, job: Job, started: datetime | None, ended: datetime,
            *, now: datetime, source: str) -> float:
    """Settle the run that just ended; returns its GPU-seconds."""
    if started is None or job.attempt <= 0:
        return 0.0
    return _settle_run(session, job, job.attempt, started, ended, now=now, source=source)


def apply_backend_status(
    session: Session, job: Job, status: BackendJobStatus, *, now: datetime,
    source: str = "local",
) -> bool:
    """Bring ``job`` in line with what the backend reports. Duplicate and late reports
    change nothing (guarded transitions). Returns True when the job changed."""
    state = JobState(job.state)
    if state in TERMINAL_STATES or state == JobState.PENDING:
        return False
    if status.attempt is not None and status.attempt > job.attempt:
        return _requeued_by_backend(session, job, status, now=now, source=source)
    bstate = status.state
    if bstate == BackendJobState.PENDING:
        # "<how it got here>; <backend reason>" (see _requeued_by_backend) is the same
        if (status.reason and not (job.reason or "").endswith(status.reason)
                and state == JobState.STARTING):
            reason = status.reason
            if (job.reason or "").startswith(_REQUEUED_PREFIXES):  # keep how it got here
                reason = f"{(job.reason or '').split('; ', 1)[0]}; {reason}"
            job.reason_code, job.reason = "backend", reason
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
        reason = status.reason or target.value
        if target == JobState.CANCELLED and job.cancel_requested_at is None:
            reason = status.reason or "cancelled outside Rechenwerk"
        if not transition(session, job, target, now=now, reason=reason, values={
            "ended_at": ended, "started_at": started, "exit_code": status.exit_code,
            "reason_code": None if target == JobState.COMPLETED else target.value,
            "reason": None if target == JobState.COMPLETED else reason,
        }):
            return False
        _settle(session, job, started, ended, now=now, source=source)
        return True
    if bstate == BackendJobState.PREEMPTED:
        return _requeue_after_preemption(session, job, started, ended, now=now,
                                         reason=status.reason or "preempted", source=source)
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


def _requeue_after_preemption(session: Session, job: Job, started: datetime | None,
                              ended: datetime, *, now: datetime, reason: str,
                              source: str) -> bool:
    if not transition(session, job, JobState.PREEMPTED, now=now, reason=reason,
                      values={"ended_at": ended, "started_at": started}):
        return False
    used_gpu_s = _settle(session, job, started, ended, now=now, source=source)
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
                ended: datetime, *, now: datetime, source: str) -> float:
    """Settle run ``attempt`` of ``job`` (once; keyed by job and attempt)."""
    gpu_type = job.gpu_type
    if gpu_type is None and job.award_period_id is not None:
        gpu_type = session.scalar(
            select(Award.gpu_type).join(AwardPeriod, AwardPeriod.award_id == Award.id)
            .where(AwardPeriod.id == job.award_period_id)
        )
    record = settle_usage(
        session, project_id=job.project_id, gpus=job.gpus, started_at=started,
        ended_at=ended, now=now, source=source, job_id=job.id, attempt=attempt,
        award_period_id=job.award_period_id, gpu_type=gpu_type,
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


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    gpus: int
    gpu_type: str
    block: str
    used_gpus: int
    drained: bool
    drain_reason: str | None
    jobs: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        state = "drained" if self.drained else ("busy" if self.used_gpus else "idle")
        return {"name": self.name, "gpus": self.gpus, "gpu_type": self.gpu_type,
                "block": self.block, "used_gpus": self.used_gpus,
                "free_gpus": 0 if self.drained else self.gpus - self.used_gpus,
                "state": state, "drained": self.drained, "drain_reason": self.drain_reason,
                "jobs": list(self.jobs)}


def list_nodes(session: Session, inventory: Sequence[Any]) -> list[NodeView]:
    """GPU usage per node of the backend's inventory, with the operator's drain state."""
    drains = {n.name: n for n in session.scalars(select(NodeState))}
    used: dict[str, int] = {}
    jobs_on: dict[str, list[int]] = {}
    for job_id, placement in session.execute(
        select(Job.id, Job.placement).where(Job.state.in_([s.value for s in ACTIVE_STATES]))
    ):
        for node, idx in placement or ():
            used[node] = used.get(node, 0) + len(idx)
            jobs_on.setdefault(node, []).append(int(job_id))
    out = []
    for n in inventory:
        d = drains.get(n.name)
        out.append(NodeView(n.name, n.gpus, n.gpu_type, n.block, used.get(n.name, 0),
                            bool(d and d.drained), d.reason if d else None,
                            tuple(jobs_on.get(n.name, ()))))
    return out


def set_drained(session: Session, actor: User, name: str, *, drained: bool,
                reason: str | None, inventory: Sequence[Any], now: datetime) -> NodeView:
    """Drain (nothing new starts there; running jobs finish) or resume a node."""
    if not actor.is_operator:
        from rechenwerk.errors import PermissionDenied

        raise PermissionDenied("draining and resuming nodes is for operators",
                               hint="Ask an operator of the centre.")
    names = [n.name for n in inventory]
    if name not in names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise NotFound(f"node {name!r} not found", field="node",
                       hint=f"Known nodes: {shown}. List them with `rechenwerk nodes`.")
    row = session.get(NodeState, name)
    if row is None:
        row = NodeState(name=name, drained=drained, updated_at=now)
        session.add(row)
    row.drained = drained
    row.reason = (reason or "drained by operator") if drained else None
    row.updated_at = now
    row.updated_by = actor.username
    session.flush()
    wake_after_commit(session)
    return next(v for v in list_nodes(session, inventory) if v.name == name)
