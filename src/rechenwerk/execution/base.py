"""The execution backend protocol: how Rechenwerk runs jobs somewhere.

Two backends implement it: the local executor (processes on this machine over an
emulated GPU inventory; Rechenwerk's own scheduling core decides placement) and Slurm
(Slurm places and runs; Rechenwerk submits, tracks and accounts). Each backend returns
an opaque ``handle`` string at submit, which the jobs service persists with the job and
passes back to every later call, so a restarted server can find its jobs again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from rechenwerk.execution.energy_meter import EnergyUse
from rechenwerk.execution.gpu_use import GpuUse


@dataclass(frozen=True, slots=True)
class GpuSlice:
    """GPUs assigned on one node: the node's name and the GPU indices on it."""

    node: str
    gpu_indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ArrayTask:
    """The job is one task of a job array: what the task is told about its array (the
    variables Slurm sets as SLURM_ARRAY_*)."""

    array_job_id: str  # the array's id (its first task's job id)
    task_id: int  # this task's index
    task_count: int
    task_min: int
    task_max: int
    task_limit: int | None = None  # %N: at most this many tasks run at once

    def environment(self) -> dict[str, str]:
        return {
            "RECHENWERK_ARRAY_JOB_ID": self.array_job_id,
            "RECHENWERK_ARRAY_TASK_ID": str(self.task_id),
            "RECHENWERK_ARRAY_TASK_COUNT": str(self.task_count),
            "RECHENWERK_ARRAY_TASK_MIN": str(self.task_min),
            "RECHENWERK_ARRAY_TASK_MAX": str(self.task_max),
        }


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything a backend needs to start one job. Strings here are user-supplied:
    backends must never pass them through a shell unquoted."""

    job_id: str  # Rechenwerk's id of the job (stable across requeues)
    attempt: int  # 1 for the first run, +1 after each requeue
    name: str
    project: str  # becomes the Slurm account
    user: str
    command: tuple[str, ...] | None  # argv, run without a shell
    script: str | None  # a script body, written to a file and executed
    workdir: str
    env: Mapping[str, str]
    gpus: int
    nodes: int
    gpus_per_node: int
    walltime_s: int
    qos: str
    log_dir: str  # stdout.log / stderr.log go here
    container_image: str | None = None
    gpu_type: str | None = None
    checkpoint_interval_s: int | None = None
    # Exact placement chosen by Rechenwerk's scheduling core; None where the backend
    # places jobs itself (Slurm).
    placement: tuple[GpuSlice, ...] | None = None
    # Rechenwerk's ids of the user and project: the local sandbox maps them to Unix ids.
    user_id: int | None = None
    project_id: int | None = None
    # Backends that schedule themselves (Slurm): (kind, handle) of jobs this one must
    # wait for, kind one of after_ok / after_any / after_not_ok (Slurm's --dependency).
    after: tuple[tuple[str, str], ...] = ()
    # the advance reservation the job runs in (Slurm: sbatch --reservation)
    reservation: str | None = None
    array: ArrayTask | None = None  # a task of a job array


class BackendJobState(enum.StrEnum):
    PENDING = "pending"  # accepted by the backend, not yet running
    RUNNING = "running"
    COMPLETED = "completed"  # exit code 0
    FAILED = "failed"  # non-zero exit, failed to launch, node failure
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"  # walltime exceeded
    PREEMPTED = "preempted"  # stopped so others may run; the job should be requeued
    UNKNOWN = "unknown"  # the backend no longer knows the handle


TERMINAL_BACKEND_STATES = frozenset(
    {
        BackendJobState.COMPLETED,
        BackendJobState.FAILED,
        BackendJobState.CANCELLED,
        BackendJobState.TIMEOUT,
        BackendJobState.PREEMPTED,
    }
)


@dataclass(frozen=True, slots=True)
class BackendRun:
    """An earlier run of a job that the backend itself ended and requeued under the same
    handle (Slurm: node failure, ``scontrol requeue``, preemption with REQUEUE)."""

    attempt: int  # Rechenwerk's attempt number of that run
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None = None  # why it ended, e.g. "NODE_FAIL"
    measured: bool = False  # True: times from the backend's accounting (e.g. sacct)


@dataclass(frozen=True, slots=True)
class BackendJobStatus:
    handle: str
    state: BackendJobState
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None  # e.g. Slurm's pending reason, "command not found"
    allocated_gpus: int | None = None
    nodes: tuple[str, ...] = ()
    account: str | None = None  # for jobs found in the backend but not submitted by us
    name: str | None = None
    user: str | None = None
    # Backends that requeue jobs themselves under the same handle (Slurm) report the
    # attempt of the current (or last) run and the earlier runs they know; None / ():
    # the backend never requeues on its own.
    attempt: int | None = None
    requeued_runs: tuple[BackendRun, ...] = ()
    # How much of its GPUs the (ended) run used; None: not measured, and why if known.
    gpu_use: GpuUse | None = None
    gpu_use_note: str | None = None
    # The (ended) run's measured energy (the local executor: NVML or RAPL); None: not
    # measured here (a Slurm job's comes with its accounting), and why if known.
    energy: EnergyUse | None = None
    energy_note: str | None = None


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    # True: the backend queues and places jobs itself (Slurm); Rechenwerk submits as
    # soon as the budget allows and reads back the backend's reasons.
    schedules_itself: bool
    multi_node: bool
    # True: preemption sends SIGTERM, waits a grace period, then requeues.
    graceful_preemption: bool
    # True: reconcile() also reports jobs the backend ran that Rechenwerk did not submit.
    imports_foreign_jobs: bool
    # True: submit_array() hands the tasks of a job array over as ONE backend array
    # (Slurm: sbatch --array); the backend enforces the array's %N limit itself.
    job_arrays: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The backend's view of the world after a restart or periodically."""

    known: Mapping[str, BackendJobStatus]  # by handle, for the handles we asked about
    foreign: Sequence[BackendJobStatus] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class NodeInventory:
    """One node of a backend: name, GPU count, GPU type and network block (placement)."""

    name: str
    gpus: int
    gpu_type: str
    block: str = "block0"


@runtime_checkable
class ExecutionBackend(Protocol):
    name: str
    capabilities: BackendCapabilities

    def submit(self, request: LaunchRequest) -> str:
        """Start (or enqueue) the job; return the opaque handle. Raises BackendError
        (or BackendUnavailable when the backend cannot be reached: retry later)."""
        ...

    def cancel(self, handle: str) -> None:
        """Stop the job (SIGTERM, grace period, SIGKILL). Idempotent."""
        ...

    def preempt(self, handle: str) -> None:
        """Stop the job so that it can be requeued: SIGTERM first so it may checkpoint."""
        ...

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        """Current status of each handle (UNKNOWN for handles the backend forgot)."""
        ...

    def inventory(self) -> Sequence[NodeInventory]:
        """The nodes Rechenwerk's scheduling core places jobs on; empty for backends that
        place jobs themselves (Slurm)."""
        ...

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        """Like poll, but thorough: used at server start to recover real end times of
        jobs that finished while Rechenwerk was down, and to find foreign jobs."""
        ...

    def close(self) -> None:
        """Release resources (threads, connections). Running jobs keep running."""
        ...


@runtime_checkable
class ArraySubmitting(Protocol):
    """A backend that runs the tasks of a job array as one array of its own."""

    def submit_array(self, requests: Sequence[LaunchRequest]) -> Mapping[str, str]:
        """Submit tasks of ONE array (each request's ``array`` set); their handles by
        Rechenwerk job id. All or nothing: raises BackendError when it was refused."""
        ...


@runtime_checkable
class Pingable(Protocol):
    """A backend that can say cheaply whether it is reachable (``/readyz``)."""

    def ping(self) -> None:
        """Return when the backend answers; raise BackendError saying why not."""
        ...
