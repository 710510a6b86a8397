"""Version-independent shapes shared by the Slurm transports (CLI, slurmrestd) and the
backend. Version-specific JSON lives in one module per API version (``v0_0_38.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from rechenwerk.errors import BackendError
from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.gpu_use import GpuUse


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    """One batch job as Slurm needs it. ``script`` is complete (all user strings in it
    already shell-quoted); the other strings are passed as separate argv items or JSON
    fields, never through a shell."""

    script: str
    name: str  # sanitized
    account: str
    partition: str
    time_limit_min: int
    nodes: int
    gpus_per_node: int
    workdir: str
    stdout: str
    stderr: str
    qos: str | None = None
    gpu_type: str | None = None
    ntasks_per_node: int = 1
    comment: str = ""
    user: str | None = None  # submit as this Unix user; None: as the service's own user
    environment: Mapping[str, str] = field(default_factory=dict)  # the job's base env
    dependency: str | None = None  # --dependency, e.g. "afterok:12:13,afternotok:14"
    reservation: str | None = None  # sbatch --reservation
    array: str | None = None  # a job array: sbatch --array (indices, optional %N)

    @property
    def gres(self) -> str | None:
        if self.gpus_per_node <= 0:
            return None
        if self.gpu_type:
            return f"gpu:{self.gpu_type}:{self.gpus_per_node}"
        return f"gpu:{self.gpus_per_node}"


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One job as Slurm reports it (live from slurmctld or finished from slurmdbd)."""

    job_id: str
    state: str  # Slurm's base state name, e.g. "PENDING", "NODE_FAIL"
    name: str = ""
    account: str = ""
    user: str = ""
    partition: str = ""
    qos: str = ""
    reason: str | None = None  # pending/ending reason, None when "None"
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None  # the process's return code (signal -> 128+signal)
    gpus: int | None = None  # allocated GPUs (gres/gpu), None if not allocated yet
    nodes: tuple[str, ...] = ()
    requeue_count: int = 0  # Slurm's restart_cnt: how often Slurm requeued this job id
    comment: str = ""
    cluster: str = ""
    # Earlier runs of a requeued job (slurmdbd records, oldest first), when known.
    earlier_runs: tuple[SlurmJob, ...] = ()
    # A task of a job array: the array's id (ArrayJobId) and this task's index; a record
    # of not yet started tasks has no index but their indices in ``array_task_string``.
    array_job_id: str = ""
    array_task_id: int | None = None
    array_task_string: str = ""
    # GPU use from the steps' gres/gpuutil, gres/gpumem TRES usage (slurm/gpu_usage.py);
    # None: the cluster records none (or the job has not ended).
    gpu_use: GpuUse | None = None
    # Slurm's ConsumedEnergy of the job in joules (slurm/energy.py); None: the cluster
    # records none (no acct_gather_energy plugin: Slurm reports 0) or it is not known.
    consumed_energy_j: float | None = None
    # slurmdbd records only (sacct --json): the time limit in minutes (None: unlimited or
    # not reported) and the type of the allocated GPUs (``gres/gpu:a100``), for
    # ``rechenwerk trace import`` (execution/slurm/sacct_trace.py).
    time_limit_min: int | None = None
    gpu_type: str | None = None

    @property
    def backend_state(self) -> BackendJobState:
        return map_state(self.state)


# Slurm job states (slurm.h, JOB_* / base states and flags as text) -> our states.
_STATE_MAP: dict[str, BackendJobState] = {
    "PENDING": BackendJobState.PENDING,
    "REQUEUED": BackendJobState.PENDING,
    "REQUEUE_HOLD": BackendJobState.PENDING,
    "REQUEUE_FED": BackendJobState.PENDING,
    "RESV_DEL_HOLD": BackendJobState.PENDING,
    "CONFIGURING": BackendJobState.PENDING,
    "RUNNING": BackendJobState.RUNNING,
    "COMPLETING": BackendJobState.RUNNING,
    "SUSPENDED": BackendJobState.RUNNING,
    "STAGE_OUT": BackendJobState.RUNNING,
    "SIGNALING": BackendJobState.RUNNING,
    "RESIZING": BackendJobState.RUNNING,
    "COMPLETED": BackendJobState.COMPLETED,
    "FAILED": BackendJobState.FAILED,
    "NODE_FAIL": BackendJobState.FAILED,
    "BOOT_FAIL": BackendJobState.FAILED,
    "OUT_OF_MEMORY": BackendJobState.FAILED,
    "DEADLINE": BackendJobState.FAILED,
    "SPECIAL_EXIT": BackendJobState.FAILED,
    "REVOKED": BackendJobState.FAILED,
    "CANCELLED": BackendJobState.CANCELLED,
    "TIMEOUT": BackendJobState.TIMEOUT,
    "PREEMPTED": BackendJobState.PREEMPTED,
}


_TASK_REF_RE = re.compile(r"^(\d+)(?:_(\d+))?$")


def split_job_ref(ref: str) -> tuple[str, int | None]:
    """``"1234"`` -> ("1234", None); ``"1234_5"`` (task 5 of array 1234) -> ("1234", 5)."""
    m = _TASK_REF_RE.match(ref.strip())
    if m is None:
        raise BackendError(f"{ref!r} is not a Slurm job id",
                           hint="Slurm job ids are numbers such as '1234', or '1234_5' for "
                           "task 5 of array 1234.")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def task_indices(task_string: str) -> set[int]:
    """The indices squeue reports for an array's waiting tasks: ``"1-3%1"``,
    ``"0-98:2"``, ``"1,3,5-7"`` (unparsable parts are ignored: Slurm wrote them)."""
    out: set[int] = set()
    for item in task_string.split("%", 1)[0].split(","):
        span, _, step = item.partition(":")
        first, _, last = span.partition("-")
        if first.isdigit() and (not last or last.isdigit()) and (not step or step.isdigit()):
            out.update(range(int(first), int(last or first) + 1, int(step or 1) or 1))
    return out


def map_state(slurm_state: str) -> BackendJobState:
    """``"CANCELLED by 0"`` / ``"RUNNING"`` / ``["PENDING", "REQUEUED"]`` text -> state."""
    base = slurm_state.strip().split(" ", 1)[0].upper()
    return _STATE_MAP.get(base, BackendJobState.UNKNOWN)


@dataclass(frozen=True, slots=True)
class SlurmAccount:
    """A Slurm account (slurmdbd) with its account-level association and the users
    associated with it."""

    name: str
    description: str = ""
    gpu_minutes: int | None = None  # GrpTRESMins gres/gpu of the account; None: no limit
    users: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SlurmReservation:
    """A Slurm advance reservation as ``scontrol`` creates and shows it. Times are UTC.
    ``maintenance``: ``Flags=MAINT,IGNORE_JOBS`` for ``Users=root`` (no jobs run);
    otherwise the ``accounts`` may run jobs in it with ``--reservation``."""

    name: str
    start: datetime
    end: datetime
    nodes: tuple[str, ...]
    accounts: tuple[str, ...] = ()
    maintenance: bool = False


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """A node of the Slurm cluster: its name and GPUs (``sinfo``)."""

    name: str
    gpus: int
    gpu_type: str = "gpu"


class SlurmTransport(Protocol):
    """How Rechenwerk talks to one Slurm cluster: the CLI or slurmrestd."""

    name: str

    def submit(self, spec: SubmitSpec) -> str:
        """Return the Slurm job id. BackendUnavailable when slurmctld is unreachable,
        BackendError when Slurm rejects the job (message carries Slurm's reason)."""
        ...

    def cancel(self, job_id: str, *, signal: str | None = None) -> None:
        """Cancel (or only signal) the job. Unknown or finished jobs are not an error."""
        ...

    def requeue(self, job_id: str) -> None:
        """Requeue a running job under the same id: Slurm sends SIGTERM (then SIGKILL
        after its KillWait) and puts the job back into its queue. A job that is no
        longer running is not an error."""
        ...

    def live_jobs(self) -> list[SlurmJob]:
        """Every job slurmctld still holds (pending, running, recently finished)."""
        ...

    def accounted_jobs(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        accounts: Sequence[str] | None = None,
    ) -> list[SlurmJob]:
        """Allocation records from slurmdbd (sacct -X), filtered."""
        ...

    def ping(self) -> None:
        """Raise BackendUnavailable when slurmctld does not answer."""
        ...

    # Accounts, associations and QOS in slurmdbd (``sacctmgr`` / ``/slurmdb/...``).
    def accounts(self, names: Sequence[str]) -> dict[str, SlurmAccount]:
        """The accounts among ``names`` that exist, with their limit and users."""
        ...

    def add_account(
        self,
        name: str,
        *,
        description: str,
        organization: str,
        gpu_minutes: int,
        qos: Sequence[str],
        default_qos: str,
    ) -> None:
        """Create the account (parent root) with ``GrpTRESMins=gres/gpu=<gpu_minutes>``."""
        ...

    def set_account_gpu_minutes(self, name: str, gpu_minutes: int) -> None:
        """Set the account's ``GrpTRESMins`` gres/gpu, leaving its other limits alone."""
        ...

    def set_account_description(self, name: str, description: str) -> None: ...

    def reset_account_usage(self, name: str) -> None:
        """Set the account's usage counter to zero (``RawUsage=0``)."""
        ...

    def add_user(self, user: str, account: str) -> None:
        """Associate ``user`` with ``account`` (creating the Slurm user if needed)."""
        ...

    def remove_user(self, user: str, account: str) -> None:
        """Remove the association of ``user`` with ``account``."""
        ...

    def qos_priorities(self) -> dict[str, int]:
        """Every QOS and its priority."""
        ...

    def set_qos_priority(self, name: str, priority: int) -> None:
        """Create the QOS with ``priority``, or change the priority of an existing one."""
        ...

    # advance reservations (``scontrol``; jobs/slurm_reservations.py keeps them in sync)
    def cluster_nodes(self) -> list[SlurmNode]:
        """Every node with its GPUs (what a reservation can hold)."""
        ...

    def reservations(self) -> list[SlurmReservation]:
        """Every advance reservation Slurm has."""
        ...

    def create_reservation(self, r: SlurmReservation) -> None: ...

    def update_reservation(self, r: SlurmReservation) -> None: ...

    def delete_reservation(self, name: str) -> None: ...

    def close(self) -> None: ...
