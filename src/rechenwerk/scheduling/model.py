"""Frozen snapshot types: what the scheduling core is given and what it answers.

Times are float seconds on the caller's clock axis (the live loop passes epoch seconds
from its injected clock, the simulator seconds from the trace start). GPU counts are ints.
A *placement* names the exact GPUs a job holds: ``(("node1", (0, 1)), ("node2", (0, 1)))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

Placement = tuple[tuple[str, tuple[int, ...]], ...]

_EMPTY: Mapping[str, ProjectInfo] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Node:
    """One compute node: its GPUs, their type, its topology block (switch/rack)."""

    name: str
    gpus: int
    gpu_type: str = "gpu"
    block: str = "b0"
    available: bool = True  # False: drained, down or failed; nothing new starts there


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    nodes: tuple[Node, ...]

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    def describe(self) -> str:
        types = sorted({n.gpu_type for n in self.nodes})
        blocks = len({n.block for n in self.nodes})
        return (
            f"{len(self.nodes)} nodes, {self.total_gpus} GPUs ({', '.join(types)}), "
            f"{blocks} topology block{'s' if blocks != 1 else ''}"
        )


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting to start. ``nodes``/``gpus_per_node`` pin the shape of a multi-node
    job; without them a job that fits one node runs on one node, a larger one on whole
    nodes. ``attained_gpu_s`` is GPU-seconds already run (requeued jobs; used by LAS)."""

    job_id: str
    project: str = "default"
    gpus: int = 1
    qos: str = "normal"
    nodes: int | None = None
    gpus_per_node: int | None = None
    walltime_s: float = math.inf
    submit_time: float = 0.0
    gpu_type: str | None = None
    attained_gpu_s: float = 0.0
    preemptible: bool = True
    reservation: str | None = None  # runs only inside this reservation (Slurm --reservation)
    # A task of a job array (scheduling.arrays): the array's id, this task's index and
    # the array's limit of tasks running at once (None: no limit).
    array_id: str | None = None
    array_index: int | None = None
    array_limit: int | None = None


_DIGITS = re.compile(r"(\d+)")


def _natural(job_id: str) -> tuple[str | int, ...]:
    if job_id.isdecimal():  # the live service's ids: the common, fast case
        return ("", int(job_id), "")
    return tuple(int(c) if i % 2 else c for i, c in enumerate(_DIGITS.split(job_id)))


def arrival_key(job: PendingJob) -> tuple[float, tuple[str | int, ...]]:
    """Arrival order of pending jobs: submit time, then the job id in natural order
    ("9" before "10", "L9" before "L10"), so ties do not depend on string sorting."""
    return (job.submit_time, _natural(job.job_id))


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: str
    project: str
    gpus: int
    placement: Placement
    start_time: float
    walltime_s: float = math.inf
    qos: str = "normal"
    submit_time: float = 0.0
    attained_gpu_s: float = 0.0  # GPU-seconds attained before this run started
    preemptible: bool = True
    reservation: str | None = None  # the reservation it runs in
    array_id: str | None = None  # a task of this job array (counts against its limit)

    @property
    def expected_end(self) -> float:
        return self.start_time + self.walltime_s


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """Per project (Slurm: account): its fair-share ``share`` (any positive weight), its
    decayed usage in GPU-seconds as of ``Snapshot.now``, and its quota guarantee."""

    share: float = 1.0
    usage_gpu_s: float = 0.0
    guaranteed_gpus: int = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """GPUs held for a window ``[start, end)``: ``gpus`` names the GPUs held per node
    (``(("node1", 4), ("node2", 2))``). Jobs of ``projects`` that ask for it by name run
    inside it; a ``maintenance`` reservation runs no job at all. No other job may hold
    these GPUs at any time in the window."""

    name: str
    start: float
    end: float
    gpus: tuple[tuple[str, int], ...]
    projects: frozenset[str] = frozenset()
    maintenance: bool = False

    @property
    def total_gpus(self) -> int:
        return sum(k for _, k in self.gpus)

    def admits(self, job: PendingJob) -> bool:
        """May ``job`` run in this reservation (it asks for it and is of a project)."""
        return (
            not self.maintenance and job.reservation == self.name and job.project in self.projects
        )

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    nodes: tuple[Node, ...]
    running: tuple[RunningJob, ...] = ()
    pending: tuple[PendingJob, ...] = ()
    projects: Mapping[str, ProjectInfo] = field(default_factory=lambda: _EMPTY)
    reservations: tuple[Reservation, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitReason:
    """Why a job is still waiting. ``code`` is stable (resources, priority, reservation,
    quota, gang, gpu_type, unsatisfiable, array_limit); ``message`` is for people."""

    code: str
    message: str


def starts_in(seconds: float) -> str:
    """A reservation's start for people: "now", "in 45 s", "in 2 h 10 min", "in 3 d 4 h"
    (the core's times are seconds on the service's or the simulation's clock, never shown
    raw)."""
    if not math.isfinite(seconds):
        return "at no known time"
    s = round(seconds)
    if s <= 0:
        return "now"
    if s < 60:
        return f"in {s} s"
    minutes = s // 60
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h" if hours else f"in {days} d"


@dataclass(frozen=True, slots=True)
class Start:
    job_id: str
    placement: Placement


@dataclass(frozen=True, slots=True)
class Preemption:
    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Apply ``preemptions`` first (requeue those jobs), then ``starts``. ``waiting`` has
    one reason for every pending job that does not start. ``wake_at``: the policy wants
    to be asked again at that time even if nothing happens (backfill interval, LAS
    demotion)."""

    starts: tuple[Start, ...]
    preemptions: tuple[Preemption, ...]
    waiting: Mapping[str, WaitReason]
    wake_at: float | None = None


@dataclass(frozen=True, slots=True)
class PriorityFactors:
    """A pending job's multifactor priority term by term, each already weighted (what
    Slurm's ``sprio`` prints): age, fair share, job size and QOS."""

    age: float
    fairshare: float
    jobsize: float
    qos: float

    @property
    def total(self) -> float:
        return self.age + self.fairshare + self.jobsize + self.qos


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A pending job's place in the core's order (1 = considered first)."""

    job_id: str
    position: int
    priority: PriorityFactors | None = None  # None: the policy has no priority number


@dataclass(frozen=True, slots=True)
class QueueView:
    """Every pending job of a snapshot in the order the next main pass considers them."""

    policy: str
    order: str  # the rule in words, e.g. "by multifactor priority (highest first)"
    jobs: tuple[QueuedJob, ...]
