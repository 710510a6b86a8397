"""Job dependencies (``depends_on`` of a spec, docs/jobs.md "Dependencies"), as Slurm's
``--dependency=afterok:..,afterany:..,afternotok:..``.

Three parts, one per moment of a job's life:

* submission (:func:`check_dependencies`, :func:`store_dependencies`): every referenced
  job must exist and be visible to the submitter (an invisible one is refused exactly like
  a missing one), and must not have ended in a way that can never satisfy it. The rows are
  written in the submission's transaction. A job can only name jobs committed before it,
  so the dependency graph has no cycles (two jobs would each have to commit first);
* the scheduler loop's ``dependencies`` phase (:class:`DependencyPhase`): pending jobs
  whose dependencies are not met are held back from the snapshot (reason ``dependency``);
  a dependency that can never be met cancels the job (Slurm's ``kill_invalid_depend``,
  ``RECHENWERK_KILL_INVALID_DEPENDENCY``) or leaves it waiting with reason
  ``dependency_never_satisfied``; cancellations propagate down chains in the same phase;
* launch on a backend that schedules itself (Slurm): a job is handed over once every
  unmet dependency is a job that backend holds (:func:`backend_dependencies`), with
  ``--dependency`` on those jobs, so Slurm's own view of the pipeline is right.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from rechenwerk.access.models import User
from rechenwerk.access.visibility import only_visible
from rechenwerk.clock import Clock
from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.jobs.models import Job, JobDependency
from rechenwerk.jobs.specs import DependsOn
from rechenwerk.jobs.states import TERMINAL_STATES, JobState
from rechenwerk.jobs.transitions import transition
from rechenwerk.store.session import session_scope

KINDS: tuple[str, ...] = ("after_ok", "after_any", "after_not_ok")
# The same kinds in Slurm's --dependency syntax.
SLURM_TYPES: Mapping[str, str] = {"after_ok": "afterok", "after_any": "afterany",
                                  "after_not_ok": "afternotok"}
REASON_WAITING = "dependency"
REASON_NEVER = "dependency_never_satisfied"

Outcome = Literal["met", "wait", "never"]
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)


def outcome(kind: str, state: str) -> Outcome:
    """Whether a dependency of ``kind`` on a job in ``state`` is met, may still be met,
    or can never be met (terminal states stay terminal, so "met" and "never" are final).
    As Slurm: after_ok wants ``completed`` (exit code 0), after_not_ok any other end
    (failed, timeout, cancelled), after_any any end."""
    if state not in _TERMINAL:
        return "wait"
    if kind == "after_any":
        return "met"
    completed = state == JobState.COMPLETED.value
    if kind == "after_ok":
        return "met" if completed else "never"
    return "never" if completed else "met"


# --------------------------------------------------------------------------- submission


def referenced_jobs(session: Session, user: User, ids: Collection[int]) -> dict[int, str]:
    """The jobs named by ids that exist AND that ``user`` may see, by id, with their
    state. The one place where a reference becomes jobs (what a name such as an array's
    id expands to belongs here); a missing id is simply absent, like an invisible one."""
    if not ids:
        return {}
    query = cast(Select[Any], select(Job.id, Job.state).where(Job.id.in_(sorted(ids))))
    stmt = only_visible(query, Job.project_id, session, user)
    return {int(i): str(s) for i, s in session.execute(stmt)}


@dataclass(frozen=True, slots=True)
class CheckedDependencies:
    pairs: list[tuple[str, int]]  # (kind, job id), all of them
    waiting: list[tuple[str, int]]  # those not met yet (the job's first reason)


def check_dependencies(session: Session, user: User,
                       depends_on: DependsOn) -> CheckedDependencies:
    """The (kind, job id) pairs of ``depends_on`` once each referenced job exists, is
    visible to ``user`` and can still satisfy it; refuses the first that does not."""
    found = referenced_jobs(session, user, {j for _k, j in depends_on.items()})
    for kind in KINDS:
        for index, job_id in enumerate(getattr(depends_on, kind)):
            where = f"depends_on.{kind}[{index}]"
            state = found.get(job_id)
            if state is None:  # missing or of a project the user cannot see: the same
                raise NotFound(
                    f"job {job_id} not found", field=where,
                    hint="A job can depend only on earlier jobs of projects you are a "
                    "member of; list them with `rechenwerk jobs`.")
            if outcome(kind, state) == "never":
                raise InvalidInput(
                    f"job {job_id} has ended as {state}, so {kind} on it can never be met",
                    field=where,
                    hint="after_ok needs a job that may still complete, after_not_ok one "
                    "that may still fail; remove the dependency or resubmit the job.")
    pairs, states = _whole_arrays(session, depends_on.items(), found)
    return CheckedDependencies(pairs, [(k, j) for k, j in pairs
                                       if outcome(k, states[j]) == "wait"])


def _whole_arrays(session: Session, pairs: list[tuple[str, int]], found: dict[int, str],
                  ) -> tuple[list[tuple[str, int]], dict[int, str]]:
    """A dependency on an array's id is one on each of its tasks, as in Slurm
    (``afterok:123`` waits for every task of array 123; a task is named by its own id).
    Refuses the first task that can no longer satisfy it."""
    heads = {int(i) for i in session.scalars(
        select(Job.id).where(Job.id.in_(sorted(found)), Job.array_job_id == Job.id))}
    if not heads:
        return pairs, found
    tasks: dict[int, list[tuple[int, str]]] = {}
    for head, tid, state in session.execute(
            select(Job.array_job_id, Job.id, Job.state)
            .where(Job.array_job_id.in_(sorted(heads))).order_by(Job.id)):
        tasks.setdefault(int(head or 0), []).append((int(tid), str(state)))
    out: list[tuple[str, int]] = []
    states = dict(found)
    for kind, job_id in pairs:
        if job_id not in heads:
            out.append((kind, job_id))
            continue
        for tid, state in tasks.get(job_id, []):
            if outcome(kind, state) == "never":
                raise InvalidInput(
                    f"task {tid} of array {job_id} has ended as {state}, so {kind} on the "
                    "array can never be met", field="depends_on",
                    hint="Depend on single tasks by their own ids instead.")
            states[tid] = state
            out.append((kind, tid))
    return out, states


_DEPS_TABLE = cast(Table, JobDependency.__table__)
_INSERT_DEPS = insert(_DEPS_TABLE)


def store_dependencies(session: Session, job_ids: Sequence[int],
                       pairs: Sequence[tuple[str, int]]) -> None:
    """Insert the dependency rows of the jobs (an array's tasks share them) in one
    executemany (Core: the jobs themselves were inserted with Core)."""
    ids = set(job_ids)
    if any(dep in ids for _k, dep in pairs):  # cannot happen: checked before insert
        raise InvalidInput("a job cannot depend on itself", field="depends_on")
    if pairs:
        session.connection().execute(_INSERT_DEPS, [
            {"job_id": job_id, "kind": kind, "depends_on_id": dep}
            for job_id in job_ids for kind, dep in pairs])


# --------------------------------------------------------------------------- showing


@dataclass(frozen=True, slots=True)
class DependencyView:
    kind: str
    job_id: int
    state: str | None  # None: the viewer may not see that job's project


def dependencies_of(session: Session, user: User, job_id: int) -> list[DependencyView]:
    """What ``job_id`` waits for, as ``user`` may see it: the state of a job of a project
    the viewer is not a member of stays hidden (only its id, which the submitter chose)."""
    rows = session.execute(
        select(JobDependency.kind, JobDependency.depends_on_id)
        .where(JobDependency.job_id == job_id)
        .order_by(JobDependency.kind, JobDependency.depends_on_id)).all()
    states = referenced_jobs(session, user, {int(r[1]) for r in rows})
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted((DependencyView(str(k), int(d), states.get(int(d))) for k, d in rows),
                  key=lambda v: (order.get(v.kind, 9), v.job_id))


def dependents_of(session: Session, user: User, job_id: int) -> list[int]:
    """Ids of the jobs waiting for ``job_id`` that ``user`` may see."""
    stmt = only_visible(
        select(Job.id).join(JobDependency, JobDependency.job_id == Job.id)
        .where(JobDependency.depends_on_id == job_id).distinct(),
        Job.project_id, session, user)
    return sorted(int(i) for i in session.scalars(stmt))


# --------------------------------------------------------------------------- launch


def backend_dependencies(session: Session, job_id: int, backend: str,
                         cluster: str | None = None) -> tuple[tuple[str, str], ...]:
    """(kind, handle) of the job's dependencies that have not ended and that ``backend``
    holds: what a self-scheduling backend (Slurm) is told to wait for. Ended ones
    are met (the dependencies phase cancels or holds the others) and are left out, since
    Slurm forgets ended jobs after MinJobAge and would refuse a dependency on them."""
    dep = aliased(Job)
    stmt = (select(JobDependency.kind, dep.backend_handle)
            .join(dep, dep.id == JobDependency.depends_on_id)
            .where(JobDependency.job_id == job_id, dep.backend_handle.is_not(None),
                   dep.backend == backend, dep.state.not_in(sorted(_TERMINAL)))
            .order_by(JobDependency.kind, dep.id))
    if cluster is not None:  # several clusters: only the same cluster's handles mean it
        stmt = stmt.where(dep.cluster == cluster)
    rows = session.execute(stmt).all()
    return tuple((str(k), str(h)) for k, h in rows)


# --------------------------------------------------------------------------- loop phase


@dataclass(slots=True)
class _Waiter:
    state: str
    handle: str | None
    cancel_requested: bool
    stored: tuple[str | None, str | None]
    deps: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class DependencyResult:
    held: set[int] = field(default_factory=set)  # pending jobs not to schedule/hand over
    cancelled: int = 0
    reasons_written: int = 0


def describe_waiting(deps: Sequence[tuple[str, int]]) -> str:
    by_kind: dict[str, list[str]] = {}
    for kind, dep in deps:
        by_kind.setdefault(kind, []).append(str(dep))
    parts = [f"{'job' if len(ids) == 1 else 'jobs'} {', '.join(ids)} ({kind})"
             for kind, ids in by_kind.items()]
    return "waiting for " + "; ".join(parts)


class DependencyPhase:
    """The loop's ``dependencies`` phase: one query over the jobs that wait for others
    (none when no job has dependencies), then the few writes that changed something."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock, *,
                 kill_invalid: bool, backend_holds_dependencies: bool,
                 backend: str = "") -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.kill_invalid = kill_invalid
        # A self-scheduling backend (Slurm) may be handed a job whose unmet dependencies
        # are all jobs it holds: it then waits for them itself (--dependency).
        self.backend_holds = backend_holds_dependencies
        self.backend = backend  # only its own jobs' handles can be waited for there

    def run(self) -> DependencyResult:
        result = DependencyResult()
        with session_scope(self.session_factory) as session:
            waiters, states, handles = self._load(session)
            if not waiters:
                return result
            now = self.clock.now()
            reasons: list[dict[str, Any]] = []
            # Cancel what can never run, until nothing changes: a cancelled job makes its
            # own dependents unsatisfiable in the same phase (chains end together).
            changed = True
            while changed:
                changed = False
                for job_id, w in waiters.items():
                    if w.cancel_requested:
                        continue
                    never = [(k, d) for k, d in w.deps if outcome(k, states[d]) == "never"]
                    if not never:
                        continue
                    message = "dependency never satisfied: " + "; ".join(
                        f"job {d} ended as {states[d]} ({k})" for k, d in never)
                    if self.kill_invalid:
                        if self._cancel(session, job_id, w, message, now):
                            result.cancelled += 1
                        w.cancel_requested = True
                        if job_id in states:
                            states[job_id] = JobState.CANCELLED.value
                            changed = True
                    elif w.state == JobState.PENDING.value:
                        result.held.add(job_id)
                        if w.stored != (REASON_NEVER, message):
                            reasons.append({"b_id": job_id, "b_code": REASON_NEVER,
                                            "b_reason": message})
                        w.cancel_requested = True  # decided: skip it below
            released: list[dict[str, Any]] = []
            for job_id, w in waiters.items():
                if w.cancel_requested:
                    continue
                waiting = [(k, d) for k, d in w.deps if outcome(k, states[d]) == "wait"]
                if not waiting:  # all met: no longer read by this phase
                    released.append({"b_id": job_id})
                    continue
                if w.state != JobState.PENDING.value:
                    continue
                if self.backend_holds and all(handles.get(d) for _k, d in waiting):
                    continue  # handed over with --dependency on those jobs
                result.held.add(job_id)
                message = describe_waiting(waiting)
                if w.stored != (REASON_WAITING, message):
                    reasons.append({"b_id": job_id, "b_code": REASON_WAITING,
                                    "b_reason": message})
            if reasons:
                table = _JOBS
                session.connection().execute(
                    update(table)
                    .where(table.c.id == bindparam("b_id"),
                           table.c.state == JobState.PENDING.value)
                    .values(reason_code=bindparam("b_code"), reason=bindparam("b_reason")),
                    reasons)
                result.reasons_written = len(reasons)
            if released:
                session.connection().execute(
                    update(_JOBS).where(_JOBS.c.id == bindparam("b_id"))
                    .values(dependency_wait=False), released)
        return result

    def _load(self, session: Session) -> tuple[dict[int, _Waiter], dict[int, str],
                                               dict[int, str | None]]:
        rows = session.connection().execute(_LOAD).all()
        waiters: dict[int, _Waiter] = {}
        states: dict[int, str] = {}
        handles: dict[int, str | None] = {}
        for r in rows:
            w = waiters.get(r.job_id)
            if w is None:
                w = waiters[r.job_id] = _Waiter(
                    r.state, r.backend_handle, r.cancel_requested_at is not None,
                    (r.reason_code, r.reason))
            w.deps.append((str(r.kind), int(r.depends_on_id)))
            states[int(r.depends_on_id)] = str(r.dep_state)
            handles[int(r.depends_on_id)] = (r.dep_handle if r.dep_backend == self.backend
                                             else None)
        for job_id, w in waiters.items():  # a waiter that is itself a dependency
            if job_id in states:
                states[job_id] = w.state
        return waiters, states, handles

    def _cancel(self, session: Session, job_id: int, w: _Waiter, message: str,
                now: datetime) -> bool:
        """A pending job ends as cancelled now; one already handed to the backend is
        cancelled there by the loop's ``forward_cancels`` (or before its launch)."""
        if w.state == JobState.PENDING.value:
            job = session.get(Job, job_id)
            return job is not None and transition(
                session, job, JobState.CANCELLED, now=now, reason=message,
                values={"ended_at": now, "reason_code": REASON_NEVER, "reason": message,
                        "cancel_requested_at": now, "dependency_wait": False})
        res = session.execute(
            update(Job).where(Job.id == job_id, Job.state == JobState.STARTING.value,
                              Job.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now, reason_code=REASON_NEVER, reason=message,
                    updated_at=now, dependency_wait=False)
            .execution_options(synchronize_session=False))
        return getattr(res, "rowcount", 0) == 1


_JOBS = cast(Table, Job.__table__)
_DEP = aliased(Job)
# The jobs still waiting for others (the index on dependency_wait, state), each with its
# dependencies and their states: nothing to read when no job waits.
_LOAD = (
    select(JobDependency.job_id, JobDependency.kind, JobDependency.depends_on_id,
           Job.state, Job.backend_handle, Job.cancel_requested_at, Job.reason_code,
           Job.reason, _DEP.state.label("dep_state"), _DEP.backend_handle.label("dep_handle"),
           _DEP.backend.label("dep_backend"))
    .select_from(Job)
    .join(JobDependency, JobDependency.job_id == Job.id)
    .join(_DEP, _DEP.id == JobDependency.depends_on_id)
    .where(Job.dependency_wait.is_(True),
           Job.state.in_([JobState.PENDING.value, JobState.STARTING.value]))
    .order_by(JobDependency.job_id)
)
