"""Job service: submit (validate, authorise, budget, idempotency), look up and cancel.
State changes go through ``jobs.transitions.transition``; what backends report is
applied by ``jobs.progress``; nodes are ``jobs.nodes``.

Functions take ``*, session`` (or ``session`` first) and never commit; the API request,
the CLI wrapper or the scheduler loop owns the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Row,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from rechenwerk.access.audit import record
from rechenwerk.access.models import PayPerUseAccount, Project, ProjectMembership, User
from rechenwerk.access.projects import (
    check_role,
    get_project,
    require_approved,
    require_project_role,
    visible_project,
)
from rechenwerk.access.validation import ref_is_id, search_pattern
from rechenwerk.access.visibility import can_see_project, only_visible
from rechenwerk.accounting.balance import Balance, balance_from_rows, balance_stmt
from rechenwerk.accounting.pay_per_use import check_credit
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import (
    BudgetExceeded,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RechenwerkError,
)
from rechenwerk.execution.slurm.containers import parse_runtime, wrap
from rechenwerk.jobs.dependencies import (
    REASON_WAITING,
    check_dependencies,
    describe_waiting,
    store_dependencies,
)
from rechenwerk.jobs.models import Job, JobArray, JobEvent
from rechenwerk.jobs.policy_config import qos_limits
from rechenwerk.jobs.specs import JobSpec, check_against_centre, check_walltime
from rechenwerk.jobs.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    JobState,
)
from rechenwerk.jobs.transitions import transition
from rechenwerk.jobs.wakeup import wake_after_commit
from rechenwerk.observability import instruments
from rechenwerk.scheduling.arrays import ArrayExpression

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
    tasks: int = 1  # a job array: how many tasks were created (``job`` is the first)


@dataclass(frozen=True, slots=True)
class _SubmitProject:
    """The project as the submit path reads it: id and slug (a :class:`ProjectRef`), and
    whether it is approved (``access.projects.require_approved``)."""

    id: int
    slug: str
    approval: str = "approved"
    approval_note: str = ""


def _project_stmt(by_id: bool, lock: bool) -> Any:
    """Core, not ORM entities: the submit path needs the project's id and slug and the
    user's role, and loading two mapped objects per submission cost ~15% of its CPU."""
    ref = Project.id == bindparam("ref_id") if by_id else Project.slug == bindparam("ref")
    stmt = (
        select(Project.id, Project.slug, ProjectMembership.role, Project.approval,
               Project.approval_note)
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
def _holds_data_dir(workdir: str, data_dir: Path) -> bool:
    work, data = Path(workdir).resolve(), Path(data_dir).resolve()
    return work == data or data in work.parents


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
    ref_id = ref_is_id(ref)
    by_id = ref_id is not None
    lock = session.get_bind().dialect.name == "postgresql"
    params = {"ref_id": ref_id} if by_id else {"ref": ref}
    session.flush()  # Core statements do not autoflush (a no-op when nothing is pending)
    row = session.connection().execute(
        _PROJECT_STMTS[by_id, lock], {**params, "user_id": user.id}).first()
    if row is None:
        get_project(session, ref)  # raises the platform's NotFound
        raise AssertionError("unreachable: the project exists but was not selected")
    return _SubmitProject(row[0], row[1], row[3], row[4]), row[2]


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


def _insert_array(session: Session, values: dict[str, Any], reason: str,
                  array: ArrayExpression) -> Job:
    """Every task of an array in a handful of statements, whatever its size: the first
    task as a single job (its id is the array's id), the array's row, then the other
    tasks in one executemany (SQLAlchemy's insertmanyvalues batches them into multi-row
    INSERTs) and their first events in one INSERT ... SELECT."""
    head = _insert_job(session, {**values, "array_task_id": array.indices[0]}, reason)
    conn = session.connection()
    conn.execute(update(_JOBS_TABLE).where(_JOBS_TABLE.c.id == head.id)
                 .values(array_job_id=head.id))
    set_committed_value(head, "array_job_id", head.id)
    conn.execute(insert(cast(Table, JobArray.__table__)), {
        "id": head.id, "expression": array.text(), "task_count": array.count,
        "task_limit": array.limit})
    if array.count > 1:
        # The idempotency key stays with the first task: it names the whole array.
        row = {k: v for k, v in values.items()
               if v is not None and k != "idempotency_key"}
        row["array_job_id"] = head.id
        conn.execute(insert(_JOBS_TABLE),
                     [{**row, "array_task_id": i} for i in array.indices[1:]])
        events = cast(Table, JobEvent.__table__)
        conn.execute(insert(events).from_select(
            ["job_id", "at", "to_state", "reason"],
            select(_JOBS_TABLE.c.id, bindparam("at", type_=events.c.at.type),
                   _JOBS_TABLE.c.state, bindparam("reason", type_=events.c.reason.type))
            .where(_JOBS_TABLE.c.array_job_id == head.id, _JOBS_TABLE.c.id != head.id),
        ), {"at": values["submitted_at"], "reason": reason})
    return head


def _budget_message(spec: JobSpec, project: _SubmitProject, balance: Balance,
                    available: float, tasks: int = 1) -> str:
    what = (f"job needs {spec.gpu_hours_requested:.2f} GPU-hours" if tasks == 1 else
            f"array of {tasks} tasks needs {tasks * spec.gpu_hours_requested:.2f} GPU-hours "
            f"({tasks} x {spec.gpu_hours_requested:.2f}:")
    return (
        f"{what} ({spec.gpus} GPUs x "
        f"{spec.walltime_s / 3600:.2f} h walltime{')' if tasks > 1 else ''}) but project "
        f"{project.slug!r} has "
        f"{available:.2f} GPU-hours available (awarded {balance.awarded_gpu_hours:.2f}, "
        f"used {balance.settled_gpu_hours:.2f}, committed by pending and running jobs "
        f"{balance.committed_gpu_hours:.2f})"
    )


def check_centre_limits(spec: JobSpec, settings: Settings,
                        shape: CentreShape | None = None) -> None:
    """Refuse what this centre can never run (its GPUs, nodes and QOS walltime limits;
    without a known shape the backend checks the shape, the walltime is checked here)."""
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


def submit_job(
    session: Session,
    user: User,
    spec: JobSpec,
    *,
    clock: Clock,
    settings: Settings,
    shape: CentreShape | None = None,
    kind: str = "batch",
) -> SubmitResult:
    """Validate, authorise, check the live balance and store the job as PENDING.

    A repeated submission with the same ``idempotency_key`` (per user) returns the first
    job and stores nothing. Each call is counted with its outcome and time
    (``rechenwerk_job_submission_duration_seconds``; counted when the service decides,
    before the caller commits)."""
    t0 = time.perf_counter()
    try:
        result = _submit_job(session, user, spec, clock=clock, settings=settings, shape=shape,
                             kind=kind)
    except RechenwerkError:
        instruments.observe_submission("refused", time.perf_counter() - t0)
        raise
    outcome = ("duplicate" if not result.created
               else "over_budget" if result.job.over_budget else "accepted")
    instruments.observe_submission(outcome, time.perf_counter() - t0)
    return result


def _submit_job(
    session: Session,
    user: User,
    spec: JobSpec,
    *,
    clock: Clock,
    settings: Settings,
    shape: CentreShape | None,
    kind: str = "batch",
) -> SubmitResult:
    # Resolve and (PostgreSQL) lock the project row in one statement: submissions of one
    # project are serialised so parallel clients cannot overdraw it. SQLite serialises
    # writers already (BEGIN IMMEDIATE in store/session.py).
    project, role = _get_project_for_update(session, spec.project, user)
    check_role(user, project.slug, role, SUBMIT_ROLES)
    require_approved(project, "run jobs")
    check_centre_limits(spec, settings, shape)
    if spec.container_image and settings.executor == "local":
        raise InvalidInput(
            "the local executor runs processes directly and cannot run container images",
            field="container_image",
            hint="Remove container_image, or submit to a centre that runs Slurm.",
        )
    if spec.container_image and settings.executor == "slurm":
        # Refused at submission, not at launch: the wrapper is the cluster's, the image
        # the user's; both are checked before anything is stored.
        wrap([], spec.container_image, parse_runtime(settings.slurm_container_runtime))
    if spec.workdir is not None and not spec.workdir.startswith("/"):
        raise InvalidInput(
            f"workdir {spec.workdir!r} must be an absolute path on the server",
            field="workdir",
            hint="The CLI resolves relative paths against the spec file's directory.",
        )
    if spec.workdir is not None and _holds_data_dir(spec.workdir, settings.data_dir):
        raise InvalidInput(
            f"workdir {spec.workdir!r} is the server's data directory or inside it",
            field="workdir",
            hint="Give a working directory of your own; the server's files are not for jobs.")
    try:
        array = spec.array_expression(settings.max_array_tasks)
    except ValueError as exc:
        raise InvalidInput(
            f"array {exc}", field="array",
            hint=f"An array has at most {settings.max_array_tasks} tasks here "
            "(RECHENWERK_MAX_ARRAY_TASKS).") from None
    tasks = array.count if array is not None else 1

    if spec.cluster is not None:
        check_job_cluster(spec, settings)
    if spec.reservation is not None:
        from rechenwerk.jobs.reservations import check_job_reservation

        check_job_reservation(session, spec.reservation, project.id, project.slug,
                              clock.now())

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
            return SubmitResult(existing, False, _project(session, existing).slug,
                                array_size(session, existing))

    balance = balance_from_rows(session, project, now, rows)
    period = balance.best_period(spec.gpu_type) if balance.periods else None
    qos = spec.qos
    over_budget = False
    account_id: int | None = None
    price: int | None = None
    # Precedence (docs/jobs.md, "Pay-per-use balance"): an active award period with
    # hours for the whole job pays; otherwise the project's active pay-per-use account,
    # when it has one (read only then: the award path stays one round trip); otherwise
    # the award rules below.
    covered = (period is not None
               and tasks * spec.gpu_hours_requested <= period.available_gpu_hours + 1e-9)
    account = None if covered else _active_account(session, project.id)
    if account is not None:
        price = check_credit(session, account, gpus=spec.gpus, walltime_s=spec.walltime_s,
                             gpu_type=spec.gpu_type, tasks=tasks, at=now)
        account_id, period = account.id, None
    elif not balance.periods:
        if balance.expired_award:
            raise BudgetExceeded(
                f"project {project.slug!r} has no active award: its awards have expired",
                field="project",
                hint="Apply for a new award (rechenwerk proposal create) or ask an operator.",
            )
        raise BudgetExceeded(
            f"project {project.slug!r} has no award of GPU-hours",
            field="project",
            hint="A project needs an accepted proposal and an award (or a pay-per-use "
            "account) before it can run jobs.",
        )
    elif period is None:
        types = ", ".join(sorted({p.gpu_type for p in balance.periods}))
        raise BudgetExceeded(
            f"project {project.slug!r} has no active award for GPU type {spec.gpu_type!r}",
            field="gpu_type",
            hint=f"The project's awards cover: {types}.",
        )
    elif not covered:
        # An array commits all its tasks at once: all of them fit, or none is stored.
        message = _budget_message(spec, project, balance, period.available_gpu_hours, tasks)
        if settings.overdraft_policy != "low_qos":
            raise BudgetExceeded(
                message,
                hint="Use fewer GPUs or a shorter walltime, wait until running jobs settle "
                "their real (usually smaller) usage, or ask the PI for more GPU-hours.",
            )
        qos, over_budget = "low", True

    # Dependencies: checked in this transaction, after the lock (docs/jobs.md).
    deps = (check_dependencies(session, user, spec.depends_on)
            if spec.depends_on is not None else None)
    waiting = deps.waiting if deps is not None else []
    reason = "over budget: accepted in the low QOS" if over_budget else "submitted"
    values = dict(
        project_id=project.id,
        user_id=user.id,
        award_period_id=period.award_period_id if period is not None else None,
        account_id=account_id,
        price_e4_per_gpu_hour=price,
        name=spec.name,
        kind=kind,
        spec=spec.to_document(),
        state=JobState.PENDING.value,
        qos=qos,
        requested_qos=spec.qos,
        over_budget=over_budget,
        gpus=spec.gpus,
        nodes=spec.nodes,
        gpus_per_node=spec.gpus_per_node,
        gpu_type=spec.gpu_type,
        requested_cluster=spec.cluster,
        walltime_s=spec.walltime_s,
        idempotency_key=spec.idempotency_key,
        reason_code=REASON_WAITING if waiting else "queued",
        reason=(describe_waiting(waiting) if waiting
                else "waiting for the next scheduling cycle"),
        attempt=0,
        attained_gpu_s=0.0,
        dependency_wait=bool(waiting),
        submitted_at=now,
        updated_at=now,
    )
    job = (_insert_job(session, values, reason) if array is None
           else _insert_array(session, values, reason, array))
    if deps is not None:  # every task of an array waits for the same jobs
        ids = [job.id] if array is None else list(session.scalars(
            select(Job.id).where(Job.array_job_id == job.id)))
        store_dependencies(session, ids, deps.pairs)
    wake_after_commit(session)
    return SubmitResult(job, True, project.slug, tasks)


def check_job_cluster(spec: JobSpec, settings: Settings) -> None:
    """The cluster a job names is declared and offers its GPU type (InvalidInput)."""
    from rechenwerk.execution.clusters import declared_clusters

    clusters = {c.name: c for c in declared_clusters(settings)}
    cluster = clusters.get(spec.cluster or "")
    if cluster is None:
        raise InvalidInput(f"unknown cluster {spec.cluster!r}", field="cluster",
                           hint=f"Use one of: {', '.join(clusters)} (`rechenwerk clusters`), "
                           "or leave cluster out to let the centre choose.")
    if not cluster.offers(spec.gpu_type):
        offered = ", ".join(sorted(cluster.offered_gpu_types or ()))
        raise InvalidInput(f"cluster {cluster.name!r} has no GPU type {spec.gpu_type!r}",
                           field="gpu_type",
                           hint=f"It offers {offered}; pick one of them or another cluster.")


def _active_account(session: Session, project_id: int) -> PayPerUseAccount | None:
    return session.scalars(select(PayPerUseAccount).where(
        PayPerUseAccount.project_id == project_id, PayPerUseAccount.is_active)).first()


def array_size(session: Session, job: Job) -> int:
    """How many tasks the array led by ``job`` has (1: a single job or a task)."""
    if job.array_job_id is None or job.array_job_id != job.id:
        return 1
    count = session.scalar(select(JobArray.task_count).where(JobArray.id == job.id))
    return int(count or 1)


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
    group_arrays: bool = False,
    sort: str = "-id",
    q: str = "",
) -> tuple[list[Job], int]:
    """Jobs the user may see, newest first (or by ``sort``: a column of JOB_SORTS, ``-``
    for descending), and the total count; ``q`` keeps the jobs whose name contains it (or
    whose id it is). ``group_arrays``: one row per array (its first task; the array is
    listed when any task has one of ``states``), as ``rechenwerk jobs`` shows them."""
    descending = sort.startswith("-")
    column = JOB_SORTS.get(sort.removeprefix("-"))
    if column is None:
        raise InvalidInput(f"cannot sort jobs by {sort.removeprefix('-')!r}", field="sort",
                           hint=f"Sort by one of: {', '.join(JOB_SORTS)} (prefix - for "
                                "descending).")
    stmt = select(Job)
    term = q.strip()
    pattern = search_pattern(term)
    if pattern is not None:
        by_name = Job.name.ilike(pattern, escape="\\")
        stmt = stmt.where(or_(by_name, Job.id == int(term)) if term.isdigit()
                          and len(term) < 10 else by_name)
    if project is not None:
        p = visible_project(session, user, project)
        stmt = stmt.where(Job.project_id == p.id)
    else:
        stmt = only_visible(stmt, Job.project_id, session, user)
    if mine:
        stmt = stmt.where(Job.user_id == user.id)
    if states:
        bad = [s for s in states if s not in JobState.__members__.values()]
        if bad:
            raise InvalidInput(
                f"unknown job state {bad[0]!r}", field="state",
                hint="Use one of: " + ", ".join(s.value for s in JobState) + ".",
            )
    wanted = list(states)
    if states and group_arrays:
        # Two parts, each on an index: jobs outside arrays in one of the states (the
        # state index), and arrays (by their first task) with a task in one of them. One
        # OR of both with its EXISTS made PostgreSQL scan every job for the count.
        task = aliased(Job)
        singles = stmt.where(Job.array_job_id.is_(None), Job.state.in_(wanted))
        arrays = stmt.where(Job.array_job_id == Job.id, select(task.id).where(
            task.array_job_id == Job.id, task.state.in_(wanted)).exists())
        counted = union_all(singles.with_only_columns(Job.id),
                            arrays.with_only_columns(Job.id)).subquery()
        total = session.scalar(select(func.count()).select_from(counted)) or 0
        any_task = (select(task.id).where(task.array_job_id == Job.id,
                                          task.state.in_(wanted)).exists())
        stmt = stmt.where(or_(and_(Job.array_job_id.is_(None), Job.state.in_(wanted)),
                              and_(Job.array_job_id == Job.id, any_task)))
    else:
        if states:
            stmt = stmt.where(Job.state.in_(wanted))
        if group_arrays:
            stmt = stmt.where(or_(Job.array_job_id.is_(None), Job.array_job_id == Job.id))
        # over the ids only (an index-only scan where the filters allow it)
        total = session.scalar(select(func.count()).select_from(
            stmt.with_only_columns(Job.id).subquery())) or 0
    order = column.desc() if descending else column.asc()
    rows = session.scalars(stmt.order_by(order, Job.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total)


# the columns a job list can be sorted by (the database sorts, with the id as tiebreak)
JOB_SORTS: dict[str, Any] = {"id": Job.id, "name": Job.name, "state": Job.state,
                             "gpus": Job.gpus, "submitted": Job.submitted_at}


def queue(session: Session, user: User, *, project: str | int | None = None) -> list[Job]:
    """The pending jobs ``user`` may see, by QOS (high, normal, low), then submission.
    The scheduler's own order and priorities: ``jobs.queue_order``."""
    jobs, _ = list_jobs(session, user, project=project, states=("pending",), limit=100_000)
    rank = {"high": 0, "normal": 1, "low": 2}
    return sorted(jobs, key=lambda j: (rank.get(j.qos, 3), j.submitted_at, j.id))


def pending_summaries(session: Session, user: User, *,
                      project: str | int | None = None) -> list[Row[Any]]:
    """Id, name, project and user of every pending job ``user`` may see (of ``project``):
    the queue pages' one narrow query (``ix_jobs_state_id``), no full rows."""
    stmt = cast(Select[Any], select(Job.id, Job.name, Job.project_id, Job.user_id).where(
        Job.state == JobState.PENDING.value))
    if project is not None:
        stmt = stmt.where(Job.project_id == visible_project(session, user, project).id)
    else:
        stmt = only_visible(stmt, Job.project_id, session, user)
    return list(session.execute(stmt))


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


def cancel(session: Session, user: User, job_id: int, *, clock: Clock,
           whole_array: bool = True) -> Job:
    """Cancel a job: a pending one at once; a starting/running one is stopped by the
    scheduler loop (SIGTERM, grace period, SIGKILL) and ends as ``cancelled``. An array's
    id cancels all its tasks (``whole_array``; False: only its first task)."""
    job = get_job(session, user, job_id)
    if whole_array and is_array_head(job):
        cancel_array(session, user, job, clock=clock)
        return get_job(session, user, job_id)
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
            record(session, user, "job.cancel", "job", job.id,
                   {"state": [state.value, JobState.CANCELLED.value]}, at=now)
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
            record(session, user, "job.cancel", "job", job.id,
                   {"state": state.value, "cancel_requested_at": now}, at=now)
            wake_after_commit(session)
    return job




# --------------------------------------------------------------------------- job arrays


def is_array_head(job: Job) -> bool:
    """True for the first task of an array: its id is the array's id (``123`` in
    ``123_[0-99]``), and cancelling it by that id cancels the whole array, as in Slurm."""
    return job.array_job_id is not None and job.array_job_id == job.id


def describe_array_states(counts: dict[str, int]) -> str:
    """``8 running, 90 pending, 2 done`` from an array's tasks per state (CLI, portal)."""
    groups = (("running", ("starting", "running")), ("pending", ("pending", "preempted")),
              ("done", ("completed",)), ("failed", ("failed",)),
              ("timeout", ("timeout",)), ("cancelled", ("cancelled",)))
    parts = [f"{n} {word}" for word, states in groups
             if (n := sum(counts.get(st, 0) for st in states))]
    return ", ".join(parts)


def display_id(job: Job) -> str:
    """``123_4`` for a task of array 123, the plain id otherwise."""
    if job.array_job_id is None:
        return str(job.id)
    return f"{job.array_job_id}_{job.array_task_id}"


def get_task(session: Session, user: User, array_job_id: int, index: int) -> Job:
    """Task ``index`` of array ``array_job_id`` (``123_4``), if ``user`` may see it."""
    job = session.scalars(select(Job).where(Job.array_job_id == array_job_id,
                                            Job.array_task_id == index)).first()
    if job is None or not can_see_project(session, user, job.project_id):
        raise NotFound(f"job {array_job_id}_{index} not found", field="job",
                       hint="List an array's tasks with `rechenwerk job show ID`.")
    return job


def cancel_task(session: Session, user: User, array_job_id: int, index: int, *,
                clock: Clock) -> Job:
    """Cancel one task of an array (``rechenwerk cancel 123_4``)."""
    task = get_task(session, user, array_job_id, index)
    return cancel(session, user, task.id, clock=clock, whole_array=False)


def array_infos(session: Session, ids: Collection[int]) -> dict[int, JobArray]:
    if not ids:
        return {}
    return {a.id: a for a in session.scalars(select(JobArray).where(JobArray.id.in_(list(ids))))}


def array_state_counts(session: Session, ids: Collection[int]) -> dict[int, dict[str, int]]:
    """Tasks per state of each array (one GROUP BY)."""
    out: dict[int, dict[str, int]] = {}
    if not ids:
        return out
    for aid, state, n in session.execute(
        select(Job.array_job_id, Job.state, func.count())
        .where(Job.array_job_id.in_(list(ids))).group_by(Job.array_job_id, Job.state)
    ):
        out.setdefault(int(aid or 0), {})[str(state)] = int(n)
    return out


def array_tasks(session: Session, head: Job) -> list[Job]:
    """Every task of the array led by ``head``, by index."""
    return list(session.scalars(select(Job).where(Job.array_job_id == head.id)
                                .order_by(Job.array_task_id)))


def cancel_array(session: Session, user: User, head: Job, *, clock: Clock) -> int:
    """Cancel every task of an array that has not ended (Slurm's ``scancel <ArrayJobId>``):
    waiting tasks at once, in two statements whatever the array's size; running ones are
    stopped by the scheduler loop. Returns how many tasks were cancelled or asked to
    stop."""
    if head.user_id != user.id and not user.is_operator:
        require_project_role(session, user, _project(session, head), {"pi"})
    now = clock.now()
    why = f"cancelled by {user.username}"
    conn = session.connection()
    session.flush()
    cancelled = 0
    for source in (JobState.PENDING.value, JobState.PREEMPTED.value):  # each its event
        ids = conn.execute(
            update(_JOBS_TABLE)
            .where(_JOBS_TABLE.c.array_job_id == head.id, _JOBS_TABLE.c.state == source)
            .values(state=JobState.CANCELLED.value, updated_at=now, ended_at=now,
                    reason_code="cancelled", reason=why, cancel_requested_at=now)
            .returning(_JOBS_TABLE.c.id)
        ).scalars().all()
        if ids:
            conn.execute(_INSERT_EVENT, [
                {"job_id": jid, "at": now, "from_state": source, "to_state": "cancelled",
                 "reason": why} for jid in ids])
            for _ in ids:
                instruments.count_state_change(JobState.CANCELLED.value)
        cancelled += len(ids)
    stopping = conn.execute(
        update(_JOBS_TABLE)
        .where(_JOBS_TABLE.c.array_job_id == head.id,
               _JOBS_TABLE.c.state.in_([s.value for s in ACTIVE_STATES]),
               _JOBS_TABLE.c.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now, reason_code="cancelling",
                reason=f"cancel requested by {user.username}", updated_at=now)
    )
    changed = cancelled + int(getattr(stopping, "rowcount", 0) or 0)
    if changed == 0 and not session.scalar(
            select(func.count()).where(Job.array_job_id == head.id,
                                       Job.state.in_([s.value for s in ACTIVE_STATES]))):
        raise InvalidTransition(
            f"every task of array {head.id} has already ended", field="job",
            hint="Only pending, starting or running tasks can be cancelled.")
    if changed:
        record(session, user, "job.cancel", "job", head.id,
               {"array": True, "cancelled": cancelled, "stopping": changed - cancelled},
               at=now)
    session.expire_all()
    wake_after_commit(session)
    return changed
