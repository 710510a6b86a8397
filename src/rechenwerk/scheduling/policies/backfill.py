"""Backfill axis: what happens after the main pass stops at a job that cannot start
(Slurm's scheduler plugins, ``SchedulerType``).

- ``NoBackfill`` - main pass only, strict queue order (``sched/builtin``).
- ``EasyBackfill`` - EASY backfill (Lifka): one reservation, for the head, at its
  *shadow time*; later jobs start now if they do not delay it. Slurm's ``sched/backfill``
  limited to a reservation depth of one (Maui/Moab ``RESERVATIONDEPTH 1``).
- ``ConservativeBackfill`` - every examined job gets a reservation in an availability
  ``Profile``, as Slurm's ``sched/backfill`` plans each job it tests; kept between
  passes and updated incrementally while jobs run as planned.

Both backfill modes share ``Backfill``: the running jobs sorted by expected end, the
``bf_interval_s`` / ``bf_max_job_test`` limits and the "did anything change" flag. Each
mixin combines with one ordering (``ordering.py``) through ``policies.compose``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, PendingQueue
from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    ProjectInfo,
    RunningJob,
    WaitReason,
    starts_in,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.placement import plan_on
from rechenwerk.scheduling.policies.base import QueueScheduler


class Profile:
    """Availability profile: free GPUs as a step function of time. ``free[i]`` GPUs are
    free on ``[times[i], times[i+1])``; ``times[0]`` is now. Adjacent steps always differ
    (a change that cancels out removes its breakpoint). A query scans the levels
    directly; a reservation is two O(log n) splits plus one pass over the steps it
    covers."""

    __slots__ = ("free", "times")

    def __init__(self, now: float, free_now: int, releases: Sequence[tuple[float, int]]) -> None:
        times = [now]
        free = [free_now]
        for t, g in releases:  # sorted by time
            if t <= times[-1]:
                free[-1] += g
            else:
                times.append(t)
                free.append(free[-1] + g)
        self.times = times
        self.free = free

    def earliest(self, gpus: int, duration: float, first: int = 0) -> float | None:
        """Earliest step start (from step ``first`` on) with ``gpus`` free for ``duration``."""
        times, free = self.times, self.free
        n = len(times)
        i = first
        while i < n:
            while free[i] < gpus:
                i += 1
                if i == n:
                    return None
            j = bisect_left(times, times[i] + duration, i + 1)  # steps i..j-1 overlap
            if j == i + 1 or min(free[i + 1 : j]) >= gpus:
                return times[i]
            k = j - 1  # restart after the last step in the window that is too full
            while free[k] >= gpus:
                k -= 1
            i = k + 1
        return None

    def advance(self, now: float) -> None:
        """Forget the steps before ``now``."""
        times = self.times
        if now <= times[0]:
            return
        i = bisect_right(times, now) - 1
        if i > 0:
            del times[:i]
            del self.free[:i]
        times[0] = now

    def fits(self, start: float, duration: float, gpus: int) -> bool:
        times = self.times
        i = max(0, bisect_right(times, start) - 1)
        j = bisect_left(times, start + duration, i + 1)
        return min(self.free[i:j]) >= gpus

    def _split(self, t: float) -> int:
        times = self.times
        i = bisect_left(times, t)
        if i < len(times) and times[i] == t:
            return i
        times.insert(i, t)
        self.free.insert(i, self.free[i - 1])
        return i

    def reserve(self, start: float, end: float, gpus: int) -> None:
        """Take ``gpus`` on [start, end) (negative: give them back)."""
        times, free = self.times, self.free
        if start < times[0]:
            start = times[0]
        if end <= start:
            return
        i = self._split(start)
        j = self._split(end) if end != math.inf else len(times)
        if j - i == 1:
            free[i] -= gpus
        else:
            free[i:j] = [f - gpus for f in free[i:j]]
        if j < len(times) and free[j] == free[j - 1]:  # no change left at ``end``
            del times[j], free[j]
        if i > 0 and free[i] == free[i - 1]:
            del times[i], free[i]


class NoBackfill(QueueScheduler):
    """Main pass only (``Scheduler._cycle``): nothing passes a blocked job."""


class Backfill(QueueScheduler):
    """What EASY and conservative share: the gating of the backfill pass and the
    running jobs in order of expected end. Subclasses implement ``_backfill_pass``."""

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self._ends: list[tuple[float, str]] = []  # (expected end, job id), sorted
        self._last_bf = -math.inf
        self._bf_dirty = True
        # a reservation falls due at this time (conservative keeps it; inf: none)
        self._next_resv = math.inf

    # -- event hooks -------------------------------------------------------------------
    def submit(self, job: PendingJob) -> None:
        super().submit(job)
        q = self.queue
        # a job queued behind the backfill depth cannot start in a backfill pass
        if not (
            isinstance(q, PendingQueue)
            and q.n > self.params.bf_max_job_test + 1
            and q.jobs[-1] is job
        ):
            self._bf_dirty = True  # the next pass reserves it or, if it jumped ahead, replans

    def finish(self, job_id: str, now: float) -> RunningJob:
        self._bf_dirty = True
        return super().finish(job_id, now)

    def cancel(self, job_id: str) -> PendingJob:
        self._bf_dirty = True
        return super().cancel(job_id)

    def set_node_available(self, name: str, available: bool) -> list[RunningJob]:
        self._bf_dirty = True
        return super().set_node_available(name, available)

    def _order_changed(self) -> None:
        self._bf_dirty = True

    def _reservations_changed(self) -> None:
        self._bf_dirty = True

    def _on_start(self, rj: RunningJob) -> None:
        insort(self._ends, (rj.start_time + rj.walltime_s, rj.job_id))

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        ends = self._ends
        i = bisect_left(ends, (rj.start_time + rj.walltime_s, rj.job_id))
        del ends[i]

    # -- the cycle ---------------------------------------------------------------------
    def _passes(self, now: float, res: CycleResult, full: bool) -> None:
        head = self._main_pass(now, res)
        if head is None:
            return
        if not full:
            resv_due = self._next_resv <= now
            if not (self._bf_dirty or resv_due):
                return
            due = self._next_bf_due(now)
            # on Slurm's timer a planned start also waits for the next tick
            if now < due and not (resv_due and self.params.bf_phase_s is None):
                res.wake_at = due if res.wake_at is None else min(res.wake_at, due)
                return
        self._last_bf = now
        self._bf_dirty = False
        self._backfill_pass(head, now, res)

    def _next_bf_due(self, now: float) -> float:
        """When the next backfill pass may run: bf_interval after the last one; with a
        phase, the next tick of Slurm's timer (phase + k * interval) from ``now`` on."""
        p = self.params
        if p.bf_phase_s is None or p.bf_interval_s <= 0:
            return self._last_bf + p.bf_interval_s
        k = math.ceil((now - p.bf_phase_s) / p.bf_interval_s - 1e-9)
        return p.bf_phase_s + k * p.bf_interval_s

    _cycle = _passes  # an ordering's own ``_cycle`` calls ``_passes`` after refreshing

    def _backfill_pass(self, head: PendingJob, now: float, res: CycleResult) -> None:
        raise NotImplementedError

    def _candidates(self) -> list[PendingJob]:
        return self.queue.first(self.params.bf_max_job_test + 1)[1:]  # after the head


class EasyBackfill(Backfill):
    """One reservation, for the head; recomputed every pass (it is cheap)."""

    def _shadow(self, head: PendingJob, now: float) -> tuple[float, list[int]] | None:
        """When and on which GPUs ``head`` could start if running jobs end by their
        walltime estimates: (shadow time, projected free GPUs per node at that time)."""
        if self.book is not None:
            return self._shadow_around_reservations(head, now)
        c = self.cluster
        proj = list(c.free)
        total = c.free_for(head.gpu_type)
        running = self.running
        index = c.index
        shape = c.shape(head)
        big = shape[0]  # GPUs on the fullest node of the job
        n_big_parts = shape.count(big)
        need = head.gpus
        gt = head.gpu_type
        eligible = [c.avail[i] and (gt is None or c.type_of[i] == gt) for i in range(len(proj))]
        # nodes that could host the largest part: all parts but the last are that large
        n_big = sum(1 for i, f in enumerate(proj) if eligible[i] and f >= big)
        for end, jid in self._ends:
            rj = running[jid]
            for name, idx in rj.placement:
                i = index[name]
                before = proj[i]
                proj[i] = before + len(idx)
                if eligible[i]:
                    total += len(idx)
                    if before < big <= proj[i]:
                        n_big += 1
            if total < need or n_big < n_big_parts:
                continue
            if plan_on(c, head, proj) is not None:
                return (end if end > now else now), proj
        return None

    def _shadow_around_reservations(
        self, head: PendingJob, now: float
    ) -> tuple[float, list[int]] | None:
        """``_shadow`` with reservations: the head may also start when a reservation it
        would run into ends, and never where its walltime would cross one."""
        book = self.book
        assert book is not None
        c = self.cluster
        proj = list(c.free)
        index = c.index
        running = self.running
        events = [(end, jid) for end, jid in self._ends]
        events += [(t, "") for r in book.items for t in (r.start, r.end) if t > now]
        events.sort()
        later = {jid: rj for jid, rj in running.items()}  # still running at the probe time
        for t, jid in [(now, ""), *events]:
            if jid:
                rj = later.pop(jid)
                for name, idx in rj.placement:
                    proj[index[name]] += len(idx)
            t = max(t, now)
            view = book.view(head, t, proj, later)
            if view is not None and plan_on(c, head, view) is not None:
                return t, list(proj)
        return None

    def _backfill_pass(self, head: PendingJob, now: float, res: CycleResult) -> None:
        c = self.cluster
        explain = self.explain
        book = self.book
        if c.free_total == 0:  # nothing can start now: no need to compute the reservation
            return
        shadow_info = self._shadow(head, now)
        if shadow_info is None:
            shadow = math.inf
            spare: list[int] = list(c.free)  # the head can never run: no reservation
            if explain:
                res.reasons[head.job_id] = self.blocked_reason(head)
        else:
            shadow, proj = shadow_info
            hview = proj if book is None else book.view(head, shadow, proj, self.running)
            rplan = None if hview is None else plan_on(c, head, hview)
            assert rplan is not None
            spare = proj
            for i, k in rplan:
                spare[i] -= k
            if explain:
                why = self.blocked_reason(head) if book is not None else None
                res.reasons[head.job_id] = WaitReason(
                    "reservation",
                    f"{why.message}; it may start {starts_in(shadow - now)}",
                ) if why is not None and why.code == "reservation" else WaitReason(
                    "resources",
                    f"waiting for {head.gpus} GPUs ({c.free_for(head.gpu_type)} free); "
                    f"reserved to start {starts_in(shadow - now)}",
                )
        free = c.free
        caps = [f if f < s else s for f, s in zip(free, spare, strict=True)]
        caps_total = sum(caps)
        max_cap = max(caps, default=0)
        max_node = c.max_size
        reason_res = WaitReason(
            "reservation",
            f"would delay job {head.job_id} (reserved to start {starts_in(shadow - now)})"
        )
        # Without advance reservations a plan depends only on the request's shape and the
        # free GPUs (live, or ``caps`` beside the reservation): a shape that did not fit
        # is not planned again in this pass until a job starts (which changes both).
        no_fit_now: set[tuple[int, int | None, int | None, str | None]] = set()
        no_fit_long: set[tuple[int, int | None, int | None, str | None]] = set()
        for job in self._candidates():
            if c.free_total == 0:
                break
            g = job.gpus
            if g > c.free_for(job.gpu_type):
                if explain:
                    res.reasons[job.job_id] = WaitReason(
                        "resources", f"waiting for {g} GPUs ({c.free_total} free)"
                    )
                continue
            long = now + job.walltime_s > shadow
            shape = (g, job.nodes, job.gpus_per_node, job.gpu_type)
            if not long:
                if book is None and job.reservation is None:
                    if shape in no_fit_now:
                        plan = None
                    else:
                        plan = c.plan(job)
                        if plan is None:
                            no_fit_now.add(shape)
                else:
                    plan = self._plan(job, now)
            elif g > caps_total or (
                max_cap < g <= max_node and job.nodes is None and job.gpus_per_node is None
            ):
                plan = None  # cannot fit beside the reservation (quick reject)
            elif book is None:
                if job.reservation is not None or shape in no_fit_long:
                    plan = None
                else:
                    plan = plan_on(c, job, caps)
                    if plan is None:
                        no_fit_long.add(shape)
            else:
                jview = book.view(job, now, caps, self.running)
                plan = None if jview is None else plan_on(c, job, jview)
            if plan is None:
                if explain:
                    res.reasons[job.job_id] = (
                        reason_res
                        if long and self._plan(job, now) is not None
                        else self.blocked_reason(job)
                    )
                continue
            self._start(job, plan, now, res)
            no_fit_now.clear()
            no_fit_long.clear()
            for i, k in plan:
                if long:
                    spare[i] -= k
                old = caps[i]
                caps[i] = free[i] if free[i] < spare[i] else spare[i]
                caps_total += caps[i] - old
            max_cap = max(caps)


class ConservativeBackfill(Backfill):
    """A reservation for every examined job in an availability profile.

    The profile and reservations are kept between passes while everything happens as
    planned (jobs end at their walltime, no arrivals inside the examined window): each
    job is then reserved once, not once per pass (``_incremental``)."""

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self._prof: Profile | None = None
        self._resv: dict[str, tuple[float, float, int]] = {}  # in reservation order

    def _forget_plan(self) -> None:
        # without a profile no reservation is due (what ``Backfill._cycle`` relies on)
        self._prof = None
        self._next_resv = math.inf

    def finish(self, job_id: str, now: float) -> RunningJob:
        rj = super().finish(job_id, now)
        if abs(rj.start_time + rj.walltime_s - now) > 1e-6:
            self._forget_plan()  # ended off its estimate: the profile is stale
        return rj

    def cancel(self, job_id: str) -> PendingJob:
        self._forget_plan()
        return super().cancel(job_id)

    def set_node_available(self, name: str, available: bool) -> list[RunningJob]:
        self._forget_plan()
        return super().set_node_available(name, available)

    def _reservations_changed(self) -> None:
        self._bf_dirty = True
        self._forget_plan()

    def _backfill_pass(self, head: PendingJob, now: float, res: CycleResult) -> None:
        self._next_resv = math.inf
        if self.book is not None:
            self._forget_plan()  # planned afresh each pass around advance reservations
        if (self._prof is not None and not self.explain and self.params.bf_resolution_s is None
                and self._incremental(head, now, res)):
            self._wake_for_reservations(now, res)
            return
        self._prof = None
        self._resv = {}
        self._conservative_full(head, now, res)
        self._wake_for_reservations(now, res)

    def _wake_for_reservations(self, now: float, res: CycleResult) -> None:
        if self._prof is None:
            return
        resv = self._resv
        nxt = min(resv.values())[0] if resv else math.inf  # reservations start after now
        if nxt <= now:
            nxt = min((s for s, _, _ in resv.values() if s > now), default=math.inf)
        self._next_resv = nxt
        if nxt < math.inf:
            res.wake_at = nxt if res.wake_at is None else min(res.wake_at, nxt)

    def _incremental(self, head: PendingJob, now: float, res: CycleResult) -> bool:
        """Reuse the last pass's profile and reservations.

        ``_resv`` is kept in reservation order. The examined jobs are walked in queue
        order: as long as they are the next reservations in that order, each keeps its
        reservation (and starts if its time has come). From the first job that is new or
        out of order (an arrival ahead of reserved jobs, a priority recalculation that
        reordered them) every later reservation is returned to the profile and the rest
        of the window is planned again - the same plan a full pass would make, since a
        reservation depends only on the running jobs and the reservations before it.
        One exception: a reserved job due now whose GPUs are free by count but not
        placeable (a whole-node shape) is re-reserved ``bf_interval_s`` later, as Slurm's
        backfill would retry it, while a full pass (the live loop's, ``explain`` on)
        replans at once and may start a later job now. False: something is off plan (a
        reserved job cannot start when due), recompute from scratch."""
        prof, resv, c = self._prof, self._resv, self.cluster
        assert prof is not None
        prof.advance(now)
        # jobs the main pass started in this cycle: a reserved one due now moves its
        # reservation to [now, end); one that started off its slot frees that slot, so
        # every reservation is planned again; one without a reservation (a priority
        # recalculation moved it to the head) is added to the profile, and only if that
        # makes a reservation collide is every reservation planned again
        added = moved = False
        started: list[RunningJob] = []
        for job, rj in res.starts:
            r = resv.pop(job.job_id, None)
            if r is None:
                added = True
            elif (added or moved) or not self._restart_at(prof, r, now):
                moved = True  # its slot is freed: later reservations may move earlier
                self._unreserve(prof, r)
            else:
                continue
            started.append(rj)
        for rj in started:
            prof.reserve(now, rj.start_time + rj.walltime_s, rj.gpus)
        if moved or (added and min(prof.free) < 0):
            for r in resv.values():
                self._unreserve(prof, r)
            resv.clear()
        # else (only jobs without a reservation started, and nothing collides): every
        # reservation still fits where it is, and a replan in queue order would put each
        # one exactly there again, since adding running jobs only fills earlier slots
        jobs = [head, *self._candidates()]
        order = list(resv)  # reservation order
        nxt = 0  # next expected reservation in ``order``
        diverged = False
        cap = c.capacity
        for job in jobs:
            jid = job.job_id
            if not diverged:
                if nxt < len(order) and order[nxt] == jid:
                    nxt += 1
                    r = resv[jid]
                    if r[0] > now:
                        continue
                    plan = self._plan(job, now)
                    if plan is None:  # its GPUs are fragmented now: retry after bf_interval_s
                        _, d, g = r
                        self._unreserve(prof, r)
                        retry = bisect_left(prof.times, now + self.params.bf_interval_s)
                        s2 = prof.earliest(g, d, max(1, retry))
                        if s2 is None:
                            return False
                        prof.reserve(s2, s2 + d, g)
                        resv[jid] = (s2, d, g)
                        continue
                    if not self._restart_at(prof, r, now):
                        return False
                    del resv[jid]
                    self._start(job, plan, now, res)
                    continue
                if jid not in resv and job.gpus > cap:
                    continue  # can never run here (node down): never reserved
                # new or out of order: replan from here on
                diverged = True
                for other in order[nxt:]:
                    r = resv.pop(other, None)
                    if r is not None:
                        self._unreserve(prof, r)
            if job.gpus > cap:
                continue
            if c.free_total == 0:
                break
            d = job.walltime_s
            s = prof.earliest(job.gpus, d)
            if s is None:
                continue
            if s <= now:
                plan = self._plan(job, now)
                if plan is not None:
                    self._start(job, plan, now, res)
                    prof.reserve(now, now + d, job.gpus)
                    continue
                s2 = prof.earliest(job.gpus, d, 1)
                s = s2 if s2 is not None else now
            prof.reserve(s, s + d, job.gpus)
            resv[jid] = (s, d, job.gpus)
        if not diverged:
            # reserved jobs that left the window (should not happen; stay consistent)
            for other in order[nxt:]:
                r = resv.pop(other, None)
                if r is not None:
                    self._unreserve(prof, r)
        return True

    @staticmethod
    def _unreserve(prof: Profile, r: tuple[float, float, int]) -> None:
        """Return a reservation's GPUs to the profile (the part from now on)."""
        s, d, g = r
        now = prof.times[0]
        if s + d <= now:
            return  # entirely in the past: already folded into the first step
        prof.reserve(max(s, now), s + d, -g)

    @staticmethod
    def _restart_at(prof: Profile, r: tuple[float, float, int], now: float) -> bool:
        """A reserved job starts now: move its reservation to [now, now + d) if the
        profile allows it (it may start late, never earlier than planned). False leaves
        the profile as it was."""
        s, d, g = r
        if s == now:
            return True
        if s > now:
            return False
        ConservativeBackfill._unreserve(prof, r)
        if not prof.fits(now, d, g):
            prof.reserve(now, s + d, g)  # put it back (from now on, as _unreserve took it)
            return False
        prof.reserve(now, now + d, g)
        return True

    def _conservative_full(self, head: PendingJob, now: float, res: CycleResult) -> None:
        c = self.cluster
        if c.free_total == 0 and not self.explain:
            return  # nothing can start now; reservations would only feed wait reasons
        running = self.running
        releases = [(max(end, now), running[jid].gpus) for end, jid in self._ends]
        prof = Profile(now, c.free_total, releases)
        book = self.book
        if book is not None:
            self._hold_reservations(prof, now)
        cap = c.capacity
        jobs = [head, *self._candidates()]
        if not self.explain:
            # Reservations only matter as long as a later job could still start now. A job
            # can start now only if it fits the free GPUs until the profile first drops
            # below its size (an upper bound that reservations only lower): examine jobs
            # up to the last one passing that test.
            window: dict[int, float] = {}
            last = 0
            for k, job in enumerate(jobs):
                g = job.gpus
                w = window.get(g)
                if w is None:
                    i, times, free = 0, prof.times, prof.free
                    while i < len(free) and free[i] >= g:
                        i += 1
                    w = window[g] = (times[i] - now) if i < len(free) else math.inf
                if job.walltime_s <= w:
                    last = k
            del jobs[last + 1 :]
        for job in jobs:
            if job.gpus > cap:
                if self.explain:
                    res.reasons[job.job_id] = self.blocked_reason(job)
                continue
            if job.reservation is not None:
                # runs on its reservation's GPUs only, which the profile already holds
                plan = self._plan(job, now)
                if plan is not None:
                    self._start(job, plan, now, res)
                elif self.explain:
                    res.reasons[job.job_id] = self.blocked_reason(job)
                continue
            d = job.walltime_s
            s = prof.earliest(job.gpus, d)
            if s is None:  # cannot happen while gpus <= capacity; stay safe
                res.reasons[job.job_id] = self.blocked_reason(job)
                continue
            if s <= now and job is not head:
                plan = self._plan(job, now)
                if plan is not None:
                    self._start(job, plan, now, res)
                    prof.reserve(now, now + d, job.gpus)
                    continue
            if s <= now:  # fits by count but fragmented now: reserve from the next step on
                s2 = prof.earliest(job.gpus, d, 1)
                s = s2 if s2 is not None else now
            prof.reserve(*self._widened(s, s + d), job.gpus)
            self._resv[job.job_id] = (s, d, job.gpus)
            if not self.explain:
                pass
            elif job is head:
                res.reasons[job.job_id] = WaitReason(
                    res.reasons[job.job_id].code,
                    f"{res.reasons[job.job_id].message}; reserved to start {starts_in(s - now)}",
                )
            else:
                r = self.blocked_reason(job) if self._plan(job, now) is None else None
                res.reasons[job.job_id] = WaitReason(
                    r.code if r else "reservation",
                    (r.message + "; " if r else "would delay earlier reservations; ")
                    + f"reserved to start {starts_in(s - now)}",
                )
            if c.free_total == 0:
                break
        if not self.explain and book is None:
            self._prof = prof

    def _widened(self, start: float, end: float) -> tuple[float, float]:
        """A reservation's span on Slurm's bf_resolution grid (itself without one)."""
        r = self.params.bf_resolution_s
        if r is None:
            return start, end
        o = self.params.bf_grid_origin_s
        return (o + math.floor((start - o) / r + 1e-9) * r,
                o + math.ceil((end - o) / r - 1e-9) * r)

    def _hold_reservations(self, prof: Profile, now: float) -> None:
        """Take the advance reservations' GPUs out of the profile over their windows
        (GPUs their own jobs hold now are already out until those jobs end)."""
        book = self.book
        assert book is not None
        inside: dict[str, list[RunningJob]] = {}
        for rj in self.running.values():
            if rj.reservation is not None:
                inside.setdefault(rj.reservation, []).append(rj)
        for r in book.items:
            if r.end <= now:
                continue
            members = inside.get(r.name, [])
            busy = sum(rj.gpus for rj in members) if r.start <= now else 0
            prof.reserve(max(r.start, now), r.end, r.total_gpus - busy)
            if r.start <= now:
                for rj in members:  # back to the reservation when they end
                    prof.reserve(max(rj.start_time + rj.walltime_s, now), r.end, rj.gpus)
