"""Discrete-event simulator that drives the real scheduling core over a trace.

The event heap holds ``(time, priority, seq, kind, job, epoch)``; ``seq`` makes ties
deterministic and ``epoch`` invalidates the completion event of a job that was preempted
meanwhile. Submissions are merged from the (sorted) trace instead of being pushed on the
heap. At each instant the engine handles every event of that time (completions before
failures before repairs before wake-ups), then the submissions, then asks the policy's
incremental scheduler for one cycle and applies its decision.

Invariants checked on every start (O(GPUs of the job)): no GPU is used twice, no job
starts before its submission, a gang job gets all its GPUs at once. ``strict=True`` also
compares the scheduler's free-GPU view with the engine's own after every cycle (O(nodes),
for tests).
"""

from __future__ import annotations

import collections
import gc
import heapq
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.cycle import CycleResult
from rechenwerk.scheduling.model import (
    ClusterSpec,
    PendingJob,
    ProjectInfo,
    Reservation,
    RunningJob,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.simulation.metrics import JobOutcome, PolicyMetrics, Timeline, compute_metrics
from rechenwerk.simulation.traces.base import TraceJob

_END, _FAIL, _REPAIR, _WAKE = 0, 1, 2, 3


class InvariantViolation(AssertionError):
    """The scheduler produced an impossible decision (a bug, never bad input)."""


@dataclass(frozen=True, slots=True)
class FailureModel:
    """Independent node failures: exponential time between failures per node, fixed
    repair time. Jobs on a failed node are requeued (work since checkpoint lost)."""

    mtbf_node_s: float
    repair_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if not (self.mtbf_node_s > 0 and self.repair_s > 0):
            raise InvalidInput("node MTBF and repair time must be > 0 seconds", field="failures")


@dataclass(slots=True)
class SimulationResult:
    """One policy's run. ``wall_seconds`` times the replay itself (set-up and the event
    loop, not reading the trace nor computing metrics); ``jobs_per_second`` = jobs /
    wall_seconds."""

    policy: str
    outcomes: list[JobOutcome]
    timeline: Timeline
    metrics: PolicyMetrics
    wall_seconds: float
    jobs_per_second: float
    walltime_note: str
    events: int = 0
    preemptions: int = 0
    node_failures: int = 0
    dropped: list[str] = field(default_factory=list)
    # Jobs cancelled because a dependency could never be met (they never ran).
    cancelled: list[str] = field(default_factory=list)
    metrics_seconds: float = 0.0  # computing the metrics, not part of wall_seconds
    cpu_seconds: float = 0.0  # CPU time of the replay (robust on a shared machine)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.metrics.to_dict())
        out.update(
            policy=self.policy,
            wall_seconds=self.wall_seconds,
            metrics_seconds=self.metrics_seconds,
            cpu_seconds=self.cpu_seconds,
            jobs_per_second=self.jobs_per_second,
            walltime_estimate=self.walltime_note,
            events=self.events,
            node_failures=self.node_failures,
            dropped_jobs=len(self.dropped),
            cancelled_jobs=len(self.cancelled),
        )
        return out


def walltime_note(walltime_factor: float) -> str:
    if walltime_factor == 1.0:
        return "walltime estimate = exact run time (where the trace gives none)"
    return f"walltime estimate = {walltime_factor:g} x run time (where the trace gives none)"


def default_shares(jobs: Sequence[TraceJob]) -> dict[str, float]:
    """Equal share for every project of the trace."""
    return dict.fromkeys(sorted({j.project for j in jobs}), 1.0)


def run_simulation(
    trace_jobs: Sequence[TraceJob],
    cluster: ClusterSpec,
    policy: str,
    *,
    params: PolicyParams | None = None,
    walltime_factor: float = 1.0,
    seed: int = 0,
    failures: FailureModel | None = None,
    progress: Callable[[int, int], None] | None = None,
    shares: Mapping[str, float] | None = None,
    drop_oversized: bool = False,
    strict: bool = False,
    reservations: Sequence[Reservation] = (),
    release_delay_s: float = 0.0,
    sched_period_s: float | None = None,
    sched_phase_s: float = 0.0,
) -> SimulationResult:
    """Replay ``trace_jobs`` on ``cluster`` under ``policy``.

    Dependencies (``TraceJob.depends_on``) are honoured as in the live service: a job is
    queued only once each job it names ended as its kind requires (after_ok: completed
    within its walltime; after_not_ok: killed at its walltime or cancelled; after_any:
    ended); when that can no longer happen it is cancelled (listed in ``cancelled``,
    never run), and so are its own dependents. A dependency on a dropped job counts as
    on a cancelled one.

    ``walltime_factor``: the walltime estimate of a job without one is factor x its real
    run time (>= 1; 1.0 = exact). A job whose trace walltime is shorter than its run
    time is killed at its walltime (as Slurm does). ``shares``: fair-share weight per
    project (default equal); quota guarantees default to the capacity split by share.
    ``drop_oversized``: drop (and list) jobs larger than the cluster instead of failing.
    ``reservations``: advance reservations the scheduler plans around (trace jobs are
    outside all of them; ``simulation/reservations_file.py``).
    ``release_delay_s``: a finished job's GPUs are free for the scheduler only this long
    after its end (a real controller learns of the end, and starts the next job, in a
    later pass; Slurm's clock has whole seconds). Its outcome still ends at its end.
    ``sched_period_s``: cycles run only on a timer, at ``sched_phase_s + k * period``
    (and when the policy asked to be woken), as slurmctld's main scheduler runs about
    once a second; events in between only change the state (None: a cycle per event).

    The cyclic garbage collector is paused during the replay: the event loop creates
    millions of short-lived objects but no reference cycles (reference counting frees
    them all), and with a large heap (the trace, earlier results) the collector's
    passes cost up to 40 % of the replay. It is re-enabled afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(
            trace_jobs,
            cluster,
            policy,
            params=params,
            walltime_factor=walltime_factor,
            seed=seed,
            failures=failures,
            progress=progress,
            shares=shares,
            drop_oversized=drop_oversized,
            strict=strict,
            reservations=reservations,
            release_delay_s=release_delay_s,
            sched_period_s=sched_period_s,
            sched_phase_s=sched_phase_s,
        )
    finally:
        if was_enabled:
            gc.enable()


def _run(
    trace_jobs: Sequence[TraceJob],
    cluster: ClusterSpec,
    policy: str,
    *,
    params: PolicyParams | None,
    walltime_factor: float,
    seed: int,
    failures: FailureModel | None,
    progress: Callable[[int, int], None] | None,
    shares: Mapping[str, float] | None,
    drop_oversized: bool,
    strict: bool,
    reservations: Sequence[Reservation] = (),
    release_delay_s: float = 0.0,
    sched_period_s: float | None = None,
    sched_phase_s: float = 0.0,
) -> SimulationResult:
    started_wall = time.perf_counter()
    started_cpu = time.process_time()
    if not (walltime_factor >= 1.0 and math.isfinite(walltime_factor)):
        raise InvalidInput(
            f"walltime factor must be a finite number >= 1, got {walltime_factor!r}",
            field="walltime_factor",
            hint="1.0 uses the exact run time as estimate; 2.0 doubles it",
        )
    if not (release_delay_s >= 0 and math.isfinite(release_delay_s)):
        raise InvalidInput("the release delay must be a finite number >= 0 seconds",
                           field="release_delay_s")
    if sched_period_s is not None and not (sched_period_s > 0 and math.isfinite(sched_period_s)
                                           and math.isfinite(sched_phase_s)):
        raise InvalidInput("the scheduling period must be a finite number > 0 seconds",
                           field="sched_period_s")
    pol = make_policy(policy, params)
    params = pol.params
    jobs = list(trace_jobs)
    if any(jobs[k].submit_time > jobs[k + 1].submit_time for k in range(len(jobs) - 1)):
        jobs.sort(key=lambda j: j.submit_time)
    nodes = cluster.nodes
    if not nodes:
        raise InvalidInput("the cluster has no nodes", field="cluster")
    total_gpus = cluster.total_gpus
    max_node = max(n.gpus for n in nodes)
    dropped: list[str] = []
    kept: list[TraceJob] = []
    for j in jobs:
        cap = (
            total_gpus
            if j.gpu_type is None
            else sum(n.gpus for n in nodes if n.gpu_type == j.gpu_type)
        )
        ok = j.gpus <= cap and (j.gpus_per_node is None or j.gpus_per_node <= max_node)
        if ok:
            kept.append(j)
        elif drop_oversized:
            dropped.append(j.job_id)
        else:
            raise InvalidInput(
                f"job {j.job_id} requests {j.gpus} GPUs"
                + (f" of type {j.gpu_type}" if j.gpu_type else "")
                + f" but the cluster has {cap}; it could never start",
                field="cluster",
                hint="use a larger --cluster, or --skip-invalid to drop such jobs",
            )
    jobs = kept
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(x for x in ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
        raise InvalidInput(
            f"job id {dup!r} occurs twice in the trace",
            field="trace",
            hint="job ids must be unique",
        )

    share_map = dict(shares) if shares else (dict(params.shares) if params.shares else {})
    for p in default_shares(jobs):
        share_map.setdefault(p, 1.0)
    if params.guarantees is None and share_map:
        tot = sum(share_map.values())
        guarantees = {p: int(total_gpus * s / tot) for p, s in share_map.items()}
    else:
        guarantees = dict(params.guarantees or {})
    projects = {
        p: ProjectInfo(share=s, guaranteed_gpus=guarantees.get(p, 0)) for p, s in share_map.items()
    }
    sched = pol.scheduler(nodes, projects, jobs[0].submit_time if jobs else 0.0)
    sched.explain = False  # wait reasons are for people; the replay does not read them
    if reservations:
        sched.set_reservations(reservations)

    n = len(jobs)
    index = {jid: k for k, jid in enumerate(ids)}
    deps_of, waiters = _dependency_graph(jobs, index, set(dropped))
    submit = [j.submit_time for j in jobs]
    run_left = [0.0] * n  # run time still needed
    wall_left = [0.0] * n  # walltime estimate for the remaining run
    for k, j in enumerate(jobs):
        est = j.walltime_s if j.walltime_s is not None else j.duration_s * walltime_factor
        run_left[k] = min(j.duration_s, est)
        wall_left[k] = max(est, run_left[k])
    useful = list(run_left)
    first_start = [-1.0] * n
    preempts = [0] * n
    lost = [0.0] * n
    attained = [0.0] * n
    epoch = [0] * n
    outcomes: list[JobOutcome | None] = [None] * n
    ckpt = params.checkpoint_interval_s
    # How each job ended, for its dependents: "" not yet, completed, timeout, cancelled.
    ended = [""] * n
    held: set[int] = set()  # submitted, waiting for dependencies
    cancelled: list[str] = []

    occupied = {nd.name: 0 for nd in nodes}  # engine's own view: bitmask of busy GPUs
    heap: list[tuple[float, int, int, int, int, int]] = []
    seq = 0
    rng = random.Random(seed)
    node_failures = 0
    if failures is not None:
        for ni in range(len(nodes)):
            seq += 1
            t_fail = (jobs[0].submit_time if jobs else 0.0) + rng.expovariate(
                1.0 / failures.mtbf_node_s
            )
            heapq.heappush(heap, (t_fail, _FAIL, seq, _FAIL, ni, 0))

    for t_r in sorted({t for r in reservations for t in (r.start, r.end)}):
        seq += 1  # a cycle at every start and end of a reservation
        heapq.heappush(heap, (t_r, _WAKE, seq, _WAKE, -1, 0))

    times: list[float] = []
    busy_s: list[int] = []
    queue_s: list[int] = []
    busy = 0
    done = 0
    events = 0
    total_preempts = 0
    next_wake = math.inf
    step = max(1, n // 200)
    next_report = step
    nxt = 0  # next trace job to submit
    pending = sched.pending
    push, pop = heapq.heappush, heapq.heappop

    def queued(k: int) -> PendingJob:
        """Job ``k`` as the core queues it: on submission, and again when requeued (with
        the remaining walltime and the service it attained so far)."""
        j = jobs[k]
        return PendingJob(j.job_id, j.project, j.gpus, j.qos, None, j.gpus_per_node,
                          wall_left[k], j.submit_time, j.gpu_type, attained[k], True)

    # Job arrays' %N: at most N tasks of an array are in the core at once (queued or
    # running); the others wait here and enter, in trace order, as tasks of theirs end.
    active: dict[str, int] = {}
    backlog: dict[str, collections.deque[int]] = {}
    array_held = 0

    def admit(k: int) -> None:
        nonlocal array_held
        j = jobs[k]
        if j.array_id is not None and j.array_limit:
            if active.get(j.array_id, 0) >= j.array_limit:
                backlog.setdefault(j.array_id, collections.deque()).append(k)
                array_held += 1
                return
            active[j.array_id] = active.get(j.array_id, 0) + 1
        sched.submit(queued(k))

    def release(k: int) -> None:
        nonlocal array_held
        aid = jobs[k].array_id
        if aid is None or not jobs[k].array_limit:
            return
        active[aid] -= 1
        waiting = backlog.get(aid)
        if waiting:
            array_held -= 1
            active[aid] += 1
            sched.submit(queued(waiting.popleft()))

    def settle_dependents(first: Sequence[int]) -> None:
        """Queue held jobs whose dependencies now hold; cancel (down the chain) those
        whose dependencies never can."""
        nonlocal done
        work = list(first)
        while work:
            k = work.pop()
            if k not in held:
                continue
            verdicts = [_outcome(kind, ended[d] if d >= 0 else "cancelled")
                        for kind, d in deps_of[k]]
            if "never" in verdicts:
                held.discard(k)
                ended[k] = "cancelled"
                cancelled.append(ids[k])
                done += 1
                work.extend(waiters.get(k, ()))
            elif all(v == "met" for v in verdicts):
                held.discard(k)
                admit(k)

    def requeue(k: int, rj: RunningJob, now: float) -> None:
        nonlocal busy, total_preempts
        elapsed = now - rj.start_time
        saved = 0.0
        if ckpt is not None and elapsed >= ckpt:
            saved = min(math.floor(elapsed / ckpt) * ckpt, run_left[k])
        run_left[k] -= saved
        wall_left[k] = max(wall_left[k] - saved, run_left[k])
        lost[k] += (elapsed - saved) * rj.gpus
        attained[k] += elapsed * rj.gpus
        preempts[k] += 1
        total_preempts += 1
        epoch[k] += 1
        busy -= rj.gpus
        for name, gpus in rj.placement:
            m = 0
            for g in gpus:
                m |= 1 << g
            occupied[name] &= ~m
        sched.submit(queued(k))

    tick_wake = -math.inf  # the timer tick a wake-up is pushed for (sched_period_s)
    idle = CycleResult()  # what a skipped cycle "returns": nothing

    while done < n:
        woke = False
        t_sub = submit[nxt] if nxt < n else math.inf
        t_ev = heap[0][0] if heap else math.inf
        now = t_sub if t_sub < t_ev else t_ev
        if now == math.inf:
            # nothing left to happen but jobs still wait: one forced full cycle, else stall
            now = times[-1] if times else 0.0
            res = sched.schedule(now, full=True)
            if not res.starts:
                first = next(iter(res.reasons.values()), None)
                raise InvariantViolation(
                    f"simulation stalled at t={now:.0f}: {len(pending)} jobs wait, none can "
                    f"start, no events left (first reason: {first})"
                )
        else:
            while heap and heap[0][0] == now:
                _, _, _, kind, k, ep = pop(heap)
                events += 1
                if kind == _END:
                    if ep != epoch[k]:
                        continue  # preempted since; stale completion
                    rj = sched.finish(ids[k], now)
                    busy -= rj.gpus
                    for name, gpus in rj.placement:
                        m = 0
                        for g in gpus:
                            m |= 1 << g
                        occupied[name] &= ~m
                    j = jobs[k]
                    outcomes[k] = JobOutcome(
                        j.job_id,
                        j.project,
                        j.gpus,
                        j.submit_time,
                        first_start[k],
                        now - release_delay_s,
                        useful[k],
                        preempts[k],
                        lost[k],
                    )
                    done += 1
                    ended[k] = "completed" if useful[k] >= j.duration_s else "timeout"
                    release(k)
                    if k in waiters:
                        settle_dependents(waiters[k])
                elif kind == _WAKE:
                    woke = True
                    if now == next_wake:
                        next_wake = math.inf
                elif kind == _FAIL:
                    name = nodes[k].name
                    node_failures += 1
                    for rj in sched.set_node_available(name, False):
                        sched.finish(rj.job_id, now)
                        requeue(index[rj.job_id], rj, now)
                    seq += 1
                    push(heap, (now + failures.repair_s, _REPAIR, seq, _REPAIR, k, 0))  # type: ignore[union-attr]
                else:  # repair
                    sched.set_node_available(nodes[k].name, True)
                    seq += 1
                    t_fail = now + rng.expovariate(1.0 / failures.mtbf_node_s)  # type: ignore[union-attr]
                    push(heap, (t_fail, _FAIL, seq, _FAIL, k, 0))
            while nxt < n and submit[nxt] == now:
                if deps_of[nxt]:
                    held.add(nxt)
                    settle_dependents((nxt,))
                else:
                    admit(nxt)
                nxt += 1
                events += 1
            if sched_period_s is None or woke:
                res = sched.schedule(now)
            else:
                k_tick = (now - sched_phase_s) / sched_period_s
                if abs(k_tick - round(k_tick)) < 1e-9:
                    res = sched.schedule(now)
                else:  # wait for the timer: the next tick runs the cycle
                    res = idle
                    t_tick = sched_phase_s + (math.floor(k_tick) + 1) * sched_period_s
                    if t_tick != tick_wake:
                        tick_wake = t_tick
                        seq += 1
                        push(heap, (t_tick, _WAKE, seq, _WAKE, -1, 0))
        for rj, _why in res.preempted:
            requeue(index[rj.job_id], rj, now)
        for job, rj in res.starts:
            k = index[job.job_id]
            if now < submit[k]:
                raise InvariantViolation(f"job {job.job_id} started at {now} before submit")
            got = 0
            for name, gpus in rj.placement:
                m = occupied[name]
                for g in gpus:
                    bit = 1 << g
                    if m & bit:
                        raise InvariantViolation(
                            f"GPU {g} of {name} given to {job.job_id} is already in use"
                        )
                    m |= bit
                occupied[name] = m
                got += len(gpus)
            if got != job.gpus:
                raise InvariantViolation(f"gang job {job.job_id} got {got}/{job.gpus} GPUs")
            if first_start[k] < 0:
                first_start[k] = now
            busy += got
            seq += 1
            push(heap, (now + run_left[k] + release_delay_s, _END, seq, _END, k, epoch[k]))
        w = res.wake_at
        if w is not None and now < w < next_wake:
            next_wake = w
            seq += 1
            push(heap, (w, _WAKE, seq, _WAKE, -1, 0))
        if times and times[-1] == now:
            busy_s[-1] = busy
            queue_s[-1] = len(pending) + array_held + len(held)
        else:
            times.append(now)
            busy_s.append(busy)
            queue_s.append(len(pending) + array_held + len(held))
        if strict:
            _check_views(sched.cluster.free, sched.cluster.names, occupied, nodes)
        if progress is not None and done >= next_report:
            progress(done, n)
            next_report = done + step
    if progress is not None:
        progress(n, n)

    wall = time.perf_counter() - started_wall
    cpu = time.process_time() - started_cpu
    final = [o for o in outcomes if o is not None]
    timeline = Timeline(times, busy_s, queue_s, total_gpus)
    t_metrics = time.perf_counter()
    # the organisation kinds the trace gives (its ``kind`` column): waits per kind
    kinds = {j.project: j.kind for j in jobs if j.kind}
    metrics = compute_metrics(final, timeline, shares=share_map or None, kinds=kinds or None)
    metrics_s = time.perf_counter() - t_metrics
    return SimulationResult(
        policy=pol.name,
        outcomes=final,
        timeline=timeline,
        metrics=metrics,
        wall_seconds=wall,
        jobs_per_second=n / wall if wall > 0 else math.inf,
        walltime_note=walltime_note(walltime_factor),
        events=events,
        preemptions=total_preempts,
        node_failures=node_failures,
        dropped=dropped,
        cancelled=cancelled,
        metrics_seconds=metrics_s,
        cpu_seconds=cpu,
    )


def _outcome(kind: str, end: str) -> str:
    """met / wait / never for a dependency of ``kind`` on a job that ended as ``end``
    ("" = not yet): the rule of the live service (jobs/dependencies.py)."""
    if not end:
        return "wait"
    if kind == "after_any":
        return "met"
    ok = end == "completed"
    if kind == "after_ok":
        return "met" if ok else "never"
    return "never" if ok else "met"


def _dependency_graph(
    jobs: Sequence[TraceJob], index: Mapping[str, int], dropped: set[str]
) -> tuple[list[tuple[tuple[str, int], ...]], dict[int, list[int]]]:
    """Per job its dependencies as (kind, index; -1 = a dropped job) and per job the
    jobs waiting for it. Refuses unknown ids and kinds, and cycles."""
    deps_of: list[tuple[tuple[str, int], ...]] = []
    waiters: dict[int, list[int]] = {}
    for k, j in enumerate(jobs):
        out: list[tuple[str, int]] = []
        for kind, dep in j.depends_on:
            if kind not in ("after_ok", "after_any", "after_not_ok"):
                raise InvalidInput(f"job {j.job_id}: unknown dependency kind {kind!r}",
                                   field="depends_on",
                                   hint="use after_ok, after_any or after_not_ok")
            d = index.get(dep, -1 if dep in dropped else None)
            if d is None:
                raise InvalidInput(f"job {j.job_id} depends on job {dep!r}, which is not in "
                                   "the trace", field="depends_on")
            if d == k:
                raise InvalidInput(f"job {j.job_id} depends on itself", field="depends_on")
            out.append((kind, d))
            if d >= 0:
                waiters.setdefault(d, []).append(k)
        deps_of.append(tuple(out))
    if waiters:  # Kahn: every job must be reachable from jobs without dependencies
        indegree = [sum(1 for _kind, d in deps if d >= 0) for deps in deps_of]
        ready = [k for k, deg in enumerate(indegree) if deg == 0]
        seen = 0
        while ready:
            k = ready.pop()
            seen += 1
            for w in waiters.get(k, ()):
                indegree[w] -= 1
                if indegree[w] == 0:
                    ready.append(w)
        if seen != len(jobs):
            first = next(jobs[k].job_id for k, deg in enumerate(indegree) if deg > 0)
            raise InvalidInput(f"the trace's dependencies form a cycle (through job {first})",
                               field="depends_on",
                               hint="a job can depend only on jobs listed before it")
    return deps_of, waiters


def _check_views(
    free: Sequence[int], names: Sequence[str], occupied: Mapping[str, int], nodes: Sequence[object]
) -> None:
    size = {getattr(nd, "name"): getattr(nd, "gpus") for nd in nodes}  # noqa: B009
    for i, name in enumerate(names):
        used = bin(occupied[name]).count("1")
        if size[name] - used != free[i]:
            raise InvariantViolation(
                f"node {name}: scheduler sees {free[i]} free GPUs, engine {size[name] - used}"
            )
