"""The incremental scheduler every policy is built on.

A ``Scheduler`` holds the working state of one cluster: a ``ClusterState`` (free GPUs),
the running jobs and the policy's queue structures. Callers drive it with ``submit``,
``finish``, ``set_node_available`` and ``schedule(now)``:

- the simulator keeps one ``Scheduler`` for a whole run and calls it on every event, so
  nothing is rebuilt per event (queue order is cached between priority recalculations,
  free GPUs are maintained incrementally);
- ``Policy.decide(snapshot)`` (the live loop) builds a fresh one from the snapshot, runs
  one full cycle and turns the result into a ``Decision``.

Each cycle has Slurm's phases: a quick main pass in queue order that stops at the first
job it cannot start, then (for backfill policies, at most every ``bf_interval_s``) a
backfill pass over at most ``bf_max_job_test`` further jobs. Jobs the cycle did not
examine share one reason ("priority: behind job X").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    PriorityFactors,
    ProjectInfo,
    Reservation,
    RunningJob,
    WaitReason,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.placement import ClusterState, Plan, plan_on
from rechenwerk.scheduling.reservations import ReservationBook

Key = tuple[float, ...]


class JobQueue(Protocol):
    """What a cycle needs of a queue: order, head, prefix, removal."""

    def push(self, key: Key, job: PendingJob) -> None: ...
    def remove(self, job: PendingJob) -> None: ...
    def head(self) -> PendingJob | None: ...
    def first(self, k: int) -> list[PendingJob]: ...
    def __iter__(self) -> Iterator[PendingJob]: ...
    def __len__(self) -> int: ...


class PendingQueue:
    """Jobs in a sort order, with O(1) removal (tombstones) and cheap head pops.

    Appending in order is O(1); an out-of-order insert is a bisect plus a list insert."""

    __slots__ = ("_dead", "_head", "jobs", "keys", "n")

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.jobs: list[PendingJob] = []
        self._head = 0
        self._dead: set[int] = set()  # id() of removed job objects still in the lists
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def push(self, key: Key, job: PendingJob) -> None:
        keys = self.keys
        if not keys or key >= keys[-1]:
            keys.append(key)
            self.jobs.append(job)
        else:
            i = bisect_right(keys, key, self._head)
            keys.insert(i, key)
            self.jobs.insert(i, job)
        self.n += 1

    def remove(self, job: PendingJob) -> None:
        """Remove a job (lazily). The caller guarantees it is queued."""
        self.n -= 1
        jobs = self.jobs
        if self._head < len(jobs) and jobs[self._head] is job:
            self._head += 1
            self._skip_dead()
        else:
            self._dead.add(id(job))
            if len(self._dead) > 256 and len(self._dead) * 2 > self.n:
                self._compact()
        if self._head > 4096 and self._head * 2 > len(jobs):
            del self.jobs[: self._head]
            del self.keys[: self._head]
            self._head = 0

    def _compact(self) -> None:
        dead = self._dead
        h = self._head
        keep = [i for i in range(h, len(self.jobs)) if id(self.jobs[i]) not in dead]
        self.keys = [self.keys[i] for i in keep]
        self.jobs = [self.jobs[i] for i in keep]
        self._head = 0
        self._dead = set()

    def _skip_dead(self) -> None:
        jobs, dead = self.jobs, self._dead
        h = self._head
        while dead and h < len(jobs) and id(jobs[h]) in dead:
            dead.discard(id(jobs[h]))
            h += 1
        self._head = h

    def head(self) -> PendingJob | None:
        return self.jobs[self._head] if self._head < len(self.jobs) else None

    def first(self, k: int) -> list[PendingJob]:
        """The first ``k`` queued jobs; purges removed entries from the scanned prefix."""
        return self.first_items(k)[1]

    def first_items(self, k: int) -> tuple[list[Key], list[PendingJob]]:
        """Keys and jobs of the first ``k`` queued jobs (purging the scanned prefix)."""
        jobs, keys, dead, h = self.jobs, self.keys, self._dead, self._head
        if not dead:
            return keys[h : h + k], jobs[h : h + k]
        seg = jobs[h : h + k]
        if dead.isdisjoint(map(id, seg)):  # the removed entries all lie further back
            return keys[h : h + k], seg
        out: list[PendingJob] = []
        out_keys: list[Key] = []
        i, n = h, len(jobs)
        while i < n and len(out) < k:
            j = jobs[i]
            if id(j) in dead:
                dead.discard(id(j))
            else:
                out.append(j)
                out_keys.append(keys[i])
            i += 1
        if i - h != len(out):
            jobs[h:i] = out
            keys[h:i] = out_keys
        return out_keys, out

    def head_key(self) -> Key:
        return self.keys[self._head]

    def __iter__(self) -> Iterator[PendingJob]:
        jobs, dead = self.jobs, self._dead
        for i in range(self._head, len(jobs)):
            j = jobs[i]
            if dead and id(j) in dead:
                continue
            yield j

    def items(self) -> Iterator[tuple[Key, PendingJob]]:
        keys, jobs, dead = self.keys, self.jobs, self._dead
        for i in range(self._head, len(jobs)):
            j = jobs[i]
            if dead and id(j) in dead:
                continue
            yield keys[i], j

    def rebuild(self, entries: list[tuple[Key, PendingJob]]) -> None:
        entries.sort(key=lambda e: e[0])
        self.keys = [e[0] for e in entries]
        self.jobs = [e[1] for e in entries]
        self._head = 0
        self._dead = set()
        self.n = len(entries)


class CycleResult:
    """What one cycle did. ``reasons`` covers the jobs the cycle examined; every other
    pending job has ``shared_reason``."""

    __slots__ = ("preempted", "reasons", "shared_reason", "starts", "wake_at")

    def __init__(self) -> None:
        self.starts: list[tuple[PendingJob, RunningJob]] = []
        self.preempted: list[tuple[RunningJob, str]] = []
        self.reasons: dict[str, WaitReason] = {}
        self.shared_reason: WaitReason | None = None
        self.wake_at: float | None = None


class Scheduler:
    """Base: FIFO queue, main pass only. Subclasses override ``_order_key``, ``_cycle``."""

    name = "fifo"

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        self.params = params
        self.cluster = ClusterState(nodes)
        self.running: dict[str, RunningJob] = {}
        self.projects: dict[str, ProjectInfo] = dict(projects or {})
        self.queue: JobQueue = PendingQueue()
        self.pending: dict[str, PendingJob] = {}
        self._seq = 0
        self._first_seen: dict[str, int] = {}
        self.now = now
        # False: skip per-job wait reasons (the simulator does not read them)
        self.explain = True
        # advance reservations (None: none relevant, placement takes the fast path)
        self.book: ReservationBook | None = None
        self._book_all: ReservationBook | None = None
        self._book_next = math.inf  # next start/end of a reservation

    # -- caller API --------------------------------------------------------------------
    def submit(self, job: PendingJob) -> None:
        if job.job_id in self.pending or job.job_id in self.running:
            raise ValueError(f"job {job.job_id} is already known to the scheduler")
        self.pending[job.job_id] = job
        self._enqueue(job)

    def add_running(self, rj: RunningJob) -> None:
        """Register an allocation that already exists (snapshot)."""
        self.cluster.allocate_exact(rj.placement)
        self.running[rj.job_id] = rj
        self._on_start(rj)

    def finish(self, job_id: str, now: float) -> RunningJob:
        """A running job ended (completed, failed, cancelled): free its GPUs."""
        rj = self.running.pop(job_id)
        self.cluster.release(rj.placement)
        self._on_stop(rj, now)
        return rj

    def cancel(self, job_id: str) -> PendingJob:
        job = self.pending.pop(job_id)
        self._dequeue(job)
        return job

    def set_node_available(self, name: str, available: bool) -> list[RunningJob]:
        """Drain/fail (False) or return (True) a node; returns the jobs running there
        (the caller decides whether to kill them and then calls ``finish``)."""
        self.cluster.set_available(name, available)
        return [rj for rj in self.running.values() if any(n == name for n, _ in rj.placement)]

    def set_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Plan around these reservations from now on (replaces any earlier ones)."""
        book = ReservationBook(reservations, self.cluster.nodes) if reservations else None
        self._book_all = book
        self.book = None  # (re)chosen at the next cycle
        self._book_next = -math.inf if book is not None else math.inf
        self._reservations_changed()

    def schedule(self, now: float, *, full: bool = False) -> CycleResult:
        """Run one cycle at ``now``. ``full``: run every phase regardless of intervals."""
        self.now = now
        res = CycleResult()
        book = self._book_all
        if book is not None and now >= self._book_next:
            # a reservation began or ended: what may start where has changed
            self.book = book if book.relevant(now) else None
            self._book_next = book.next_boundary(now)
            self._reservations_changed()
        if self.pending:
            self._cycle(now, res, full)
        if self._book_next < math.inf and self.book is not None:
            nxt = self._book_next
            res.wake_at = nxt if res.wake_at is None else min(res.wake_at, nxt)
        return res

    def _reservations_changed(self) -> None:
        """Hook: cached plans (backfill) are stale."""

    def _plan(self, job: PendingJob, now: float) -> Plan | None:
        """Where ``job`` would start now, honouring the reservations."""
        book = self.book
        if book is None:
            return None if job.reservation is not None else self.cluster.plan(job)
        view = book.view(job, now, self.cluster.free, self.running)
        return None if view is None else plan_on(self.cluster, job, view)

    # -- the order, explained (the queue views of the API, CLI and portal) --------------
    order_rule = "by submit time (first come, first served)"

    def queue_order(self, now: float) -> list[PendingJob]:
        """Pending jobs in the order the next main pass considers them."""
        return list(self.queue)

    def current_order(self, now: float) -> list[PendingJob]:
        """The order as held now, recalculating nothing (what the last pass used). Unlike
        ``queue_order`` it leaves the scheduler as it is, so the live loop can publish it
        between cycles without changing when priorities are recalculated."""
        return self.queue_order(now)

    def priority_factors(self, job: PendingJob, now: float) -> PriorityFactors | None:
        """The job's priority term by term; None where the policy has no such number."""
        return None

    # -- hooks for policies ------------------------------------------------------------
    def _order_key(self, job: PendingJob) -> Key:
        return (job.submit_time, self._arrival(job))

    def _arrival(self, job: PendingJob) -> int:
        seq = self._first_seen.get(job.job_id)
        if seq is None:
            seq = self._first_seen[job.job_id] = self._seq
            self._seq += 1
        return seq

    def _enqueue(self, job: PendingJob) -> None:
        self.queue.push(self._order_key(job), job)

    def _dequeue(self, job: PendingJob) -> None:
        self.queue.remove(job)

    def _on_start(self, rj: RunningJob) -> None:
        pass

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        pass

    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        self._main_pass(now, res)

    # -- shared mechanics --------------------------------------------------------------
    def _start(self, job: PendingJob, plan: Plan, now: float, res: CycleResult) -> RunningJob:
        placement = self.cluster.allocate(plan)
        rj = RunningJob(
            job.job_id,
            job.project,
            job.gpus,
            placement,
            now,
            job.walltime_s,
            job.qos,
            job.submit_time,
            job.attained_gpu_s,
            job.preemptible,
            job.reservation,
            job.array_id,
        )
        del self.pending[job.job_id]
        self._dequeue(job)
        self.running[job.job_id] = rj
        self._on_start(rj)
        res.starts.append((job, rj))
        return rj

    def _preempt(self, rj: RunningJob, now: float, why: str, res: CycleResult) -> None:
        del self.running[rj.job_id]
        self.cluster.release(rj.placement)
        self._on_stop(rj, now)
        res.preempted.append((rj, why))

    def _main_pass(self, now: float, res: CycleResult) -> PendingJob | None:
        """Start jobs in queue order until the first that cannot start; return it."""
        queue = self.queue
        skipped = 0  # jobs of reservations that cannot start: they block no one else
        while True:
            if skipped:
                ahead = queue.first(skipped + 1)
                job = ahead[skipped] if len(ahead) > skipped else None
            else:
                job = queue.head()
            if job is None:
                return None
            plan = self._plan(job, now)
            if plan is None and job.reservation is not None:
                if self.explain:
                    res.reasons[job.job_id] = self.blocked_reason(job)
                skipped += 1
                continue
            if plan is None:
                if self.explain:
                    res.reasons[job.job_id] = self.blocked_reason(job)
                    res.shared_reason = WaitReason(
                        "priority", f"behind job {job.job_id} in the queue"
                    )
                return job
            self._start(job, plan, now, res)

    def blocked_reason(self, job: PendingJob) -> WaitReason:
        """Why ``job`` cannot start on the current free GPUs."""
        c = self.cluster
        book = self.book or self._book_all
        if book is not None or job.reservation is not None:
            if book is None:
                return WaitReason(
                    "reservation", f"reservation {job.reservation!r} does not exist"
                )
            would_fit = job.reservation is None and c.plan(job) is not None
            why = book.why(job, self.now, would_fit)
            if why is not None:
                return why
        gt = job.gpu_type
        if gt is not None and gt not in c.free_by_type:
            return WaitReason("gpu_type", f"no nodes with GPU type {gt!r} in the cluster")
        cap = c.capacity_for(gt)
        if job.gpus > cap:
            what = f"{gt} GPUs" if gt else "GPUs"
            return WaitReason(
                "unsatisfiable",
                f"requests {job.gpus} {what} but only {cap} are available in the cluster",
            )
        free = c.free_for(gt)
        if job.gpus > free:
            return WaitReason("resources", f"waiting for {job.gpus} GPUs ({free} free)")
        shape = c.shape(job)
        if len(shape) > 1:
            return WaitReason(
                "gang",
                f"needs {len(shape)} nodes with {shape[0]} free GPUs each at once; "
                f"{free} GPUs are free but fragmented",
            )
        return WaitReason(
            "resources", f"needs {job.gpus} GPUs on one node; {free} free GPUs are fragmented"
        )


def expected_end(rj: RunningJob, now: float) -> float:
    """A running job's end by its walltime estimate; an overrun one ends 'any moment'."""
    end = rj.start_time + rj.walltime_s
    return end if end > now else now


INF = math.inf
