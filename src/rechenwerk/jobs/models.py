"""Jobs tables: the job record (spec, state, placement, backend handle), its state
history, the operator's drain state of nodes, and the scheduler loop's last queue
order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from rechenwerk.accounting.balance import COMMITTING_STATES, register_commitments
from rechenwerk.accounting.pay_per_use import register_account_commitments
from rechenwerk.store.base import Base, UTCDateTime


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("gpus > 0", name="gpus_positive"),
        CheckConstraint("walltime_s > 0", name="walltime_positive"),
        CheckConstraint("kind IN ('batch', 'jupyterlab')", name="kind_known"),
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_project_state", "project_id", "state"),
        # The balance's committed-hours sum (one period, live states) reads only the
        # period's live jobs, not every job it ever had; also serves the FK's lookups.
        Index("ix_jobs_award_period_state", "award_period_id", "state"),
        # The loop's dependencies phase reads only jobs still waiting for others.
        Index("ix_jobs_dependency_wait_state", "dependency_wait", "state"),
        # An array's tasks (listing, counts by state, cancel all, a task by its index).
        Index("ix_jobs_array", "array_job_id", "array_task_id"),
        # The pay-per-use account's committed EUR (one account, live states).
        Index("ix_jobs_account_state", "account_id", "state"),
        # "my sessions": a user's interactive jobs (sessions/service.py)
        Index("ix_jobs_user_kind", "user_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    # No index of its own: the unique (user_id, idempotency_key) index leads with it.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    award_period_id: Mapped[int | None] = mapped_column(
        ForeignKey("award_periods.id", ondelete="SET NULL")
    )
    # Charged to a pay-per-use account instead of an award period (accounting/
    # pay_per_use.py), at the price per GPU-hour it was accepted at (EUR x 10^4).
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("pay_per_use_accounts.id", ondelete="SET NULL")
    )
    price_e4_per_gpu_hour: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    # "batch", or "jupyterlab": an interactive session the server started (sessions/);
    # its command is the server's, never the user's.
    kind: Mapped[str] = mapped_column(String(16), default="batch", server_default="batch")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    qos: Mapped[str] = mapped_column(String(16))  # effective QOS (low when overdrawn)
    requested_qos: Mapped[str] = mapped_column(String(16))
    over_budget: Mapped[bool] = mapped_column(Boolean, default=False)
    gpus: Mapped[int] = mapped_column(Integer)
    nodes: Mapped[int | None] = mapped_column(Integer)
    gpus_per_node: Mapped[int | None] = mapped_column(Integer)
    gpu_type: Mapped[str | None] = mapped_column(String(64))
    walltime_s: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    reason_code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    # When a pending job is expected to start (jobs/forecasts.py); NULL: unknown.
    expected_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backend: Mapped[str | None] = mapped_column(String(32))
    # Several clusters (execution/clusters.py): the one the job named (None: routed) and
    # the one it was handed to (None: not yet, or before clusters were declared).
    requested_cluster: Mapped[str | None] = mapped_column(String(32))
    cluster: Mapped[str | None] = mapped_column(String(32))
    backend_handle: Mapped[str | None] = mapped_column(String(256))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # 0 until first start
    placement: Mapped[list[Any] | None] = mapped_column(JSON)  # [[node, [gpu indices]], ...]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    # GPU-seconds used by earlier attempts (preempted runs), for LAS / attained service.
    attained_gpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    # True while some dependency of the job is not met (jobs/dependencies.py); cleared
    # when all are met or the job is cancelled for one that never can be.
    dependency_wait: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A task of a job array (scheduling/arrays.py): the id of the array's first task
    # (Slurm's ArrayJobId; its row in job_arrays) and this task's index. NULL: no array.
    array_job_id: Mapped[int | None] = mapped_column(Integer)
    array_task_id: Mapped[int | None] = mapped_column(Integer)


class JobArray(Base):
    """One job array: its expression and its limit of tasks running at once. Its id is
    the job id of its first task (``jobs.array_job_id`` of every task)."""

    __tablename__ = "job_arrays"
    __table_args__ = (CheckConstraint("task_count > 0", name="task_count_positive"),)

    id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                    primary_key=True)
    expression: Mapped[str] = mapped_column(Text)  # canonical, e.g. "0-99%10"
    task_count: Mapped[int] = mapped_column(Integer)
    task_limit: Mapped[int | None] = mapped_column(Integer)  # None: no %N limit


class JobEvent(Base):
    """One state change of a job (its history)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)


class JobDependency(Base):
    """One job waits for another (``depends_on`` of its spec, docs/jobs.md): ``kind`` is
    ``after_ok``, ``after_any`` or ``after_not_ok``. Written once, with the job, in the
    submission's transaction; the referenced job was committed before, so the
    dependencies of all jobs form no cycle."""

    __tablename__ = "job_dependencies"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Indexed: "which jobs wait for this one" (the job page's dependents).
    depends_on_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, index=True)


class NodeState(Base):
    """Operator state of a node of the execution backend (drained or not)."""

    __tablename__ = "node_states"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    drained: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class QueueOrderRecord(Base):
    """The scheduler loop's last queue order (one row, id 1), for the server processes
    that do not run the loop (other ``--workers``, replicas, API-only servers): the
    pending jobs in the order of the loop's pass, position = place in ``jobs``, each
    ``[job id, age, fair share, job size, QOS]`` (weighted priority terms) or
    ``[job id]`` where the policy has no priority number (``jobs/queue_order.py``)."""

    __tablename__ = "queue_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # the cycle's snapshot time
    policy: Mapped[str] = mapped_column(String(64))
    order_rule: Mapped[str] = mapped_column(Text)
    jobs: Mapped[list[Any]] = mapped_column(JSON)


class ReservationRecord(Base):
    """An operator's advance reservation: GPUs held for ``[starts_at, ends_at)`` for the
    jobs of ``project_ids`` that ask for it, or for maintenance (no jobs). ``gpus`` is
    what it holds, resolved at creation: ``[[node, GPUs], ...]``."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window_positive"),
        Index("ix_reservations_ends_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    project_ids: Mapped[list[int]] = mapped_column(JSON)
    gpu_type: Mapped[str | None] = mapped_column(String(64))
    requested_gpus: Mapped[int | None] = mapped_column(Integer)  # None: named nodes
    gpus: Mapped[list[Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def committed_gpu_seconds(award_period_id: Any) -> Select[Any]:
    """GPU-seconds the award period's live jobs may still use (GPUs x walltime each); the
    balance query correlates it to its award period (:mod:`rechenwerk.accounting.balance`)."""
    return (
        select(func.coalesce(func.sum(Job.gpus * Job.walltime_s), 0))
        # The states inline as SQL literals: a plain ``in_(tuple)`` is an "expanding"
        # parameter that SQLAlchemy re-renders on every execution.
        .where(Job.award_period_id == award_period_id,
               Job.state.in_([literal_column(f"'{s}'") for s in COMMITTING_STATES]))
    )


def committed_account_rows(account_id: Any) -> Select[int, int, int | None, int]:
    """The live jobs charged to a pay-per-use account, grouped by what a job may cost
    (GPUs, walltime, price): few rows however many jobs (an array's tasks are alike)."""
    return (
        select(Job.gpus, Job.walltime_s, Job.price_e4_per_gpu_hour, func.count(Job.id))
        .where(Job.account_id == account_id,
               Job.state.in_([literal_column(f"'{s}'") for s in COMMITTING_STATES]))
        .group_by(Job.gpus, Job.walltime_s, Job.price_e4_per_gpu_hour)
    )


register_commitments(committed_gpu_seconds)
register_account_commitments(committed_account_rows)
