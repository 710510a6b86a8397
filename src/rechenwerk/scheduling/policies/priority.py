"""Queue-ordered policies: fifo, multifactor priority, and EASY/conservative backfill.

One class covers every combination: the *order* (submit time, or Slurm-style multifactor
priority recalculated every ``priority_calc_period_s``) and the *backfill* mode (none,
EASY: one reservation for the top job; conservative: a reservation for every examined
job in an availability profile).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, Key, PendingQueue, Scheduler
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, RunningJob, WaitReason
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.placement import plan_on

LN2 = math.log(2.0)
_CAPPED = 1 << 40  # capped lists come after all young lists in the merge tie-break


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


class MultifactorQueue:
    """Pending jobs in multifactor priority order without ever re-sorting the queue.

    priority(j, t) = w_age * min((t - submit_j) / max_age, 1) + w_fs * F(project)
                     + w_size * size_j + w_qos * qos_j
    Inside one project F is common, so jobs younger than ``max_age`` keep a fixed order
    (by ``size + qos - w_age * submit / max_age``) and older ones by ``size + qos``. Each
    project therefore holds two sorted lists (young, capped), and the global order is a
    lazy k-way merge of the list heads: O(projects) for the head, O(k log projects) for
    the first k jobs. A recalculation only updates F per project and moves jobs that
    reached ``max_age`` into the capped list (each job moves once).
    """

    __slots__ = (
        "_a",
        "_age_max",
        "_c_complete",
        "_c_jobs",
        "_c_keys",
        "_c_valid",
        "_capped",
        "_gkey",
        "_off",
        "_rank",
        "_sched",
        "_static_cache",
        "_subm",
        "_where",
        "_young",
        "n",
        "t",
    )

    def __init__(self, sched: PriorityScheduler) -> None:
        self._sched = sched
        p = sched.params
        self._a = p.weight_age / p.max_age_s
        self._age_max = p.max_age_s
        self._young: dict[str, PendingQueue] = {}
        self._capped: dict[str, PendingQueue] = {}
        self._subm: dict[str, PendingQueue] = {}
        self._where: dict[str, bool] = {}  # job id -> in the capped list
        self._static_cache: dict[str, float] = {}
        self.n = 0
        self.t = sched.now
        # The merged order is fixed between recalculations (offsets depend only on t and
        # the fair-share factors), so the first jobs of the merge are cached with their
        # global keys and kept up to date by push/remove; a recalculation drops the cache.
        self._rank: dict[str, int] = {}  # project -> position (ties between lists)
        self._off: dict[tuple[str, bool], float] = {}
        self._c_keys: list[tuple[float, float, int, Key]] = []
        self._c_jobs: list[PendingJob] = []
        self._gkey: dict[str, tuple[float, float, int, Key]] = {}
        self._c_valid = False
        self._c_complete = False

    def __len__(self) -> int:
        return self.n

    def _static(self, job: PendingJob) -> float:
        g = self._static_cache.get(job.job_id)
        if g is None:
            g = self._static_cache[job.job_id] = self._sched.static_priority(job)
        return g

    def _offset(self, p: str, capped: bool) -> float:
        off = self._off.get((p, capped))
        if off is None:
            sched = self._sched
            age = sched.params.weight_age if capped else self._a * self.t
            off = self._off[(p, capped)] = sched.weight_fs_factor(p) + age
        return off

    def _global_key(
        self, p: str, capped: bool, key: Key, job: PendingJob
    ) -> tuple[float, float, int, Key]:
        """The job's position in the merged order (what ``first`` compares)."""
        rank = self._rank[p] + (_CAPPED if capped else 0)
        return (key[0] - self._offset(p, capped), job.submit_time, rank, key)

    def push(self, key: Key, job: PendingJob) -> None:
        p = job.project
        if p not in self._young:
            self._young[p] = PendingQueue()
            self._capped[p] = PendingQueue()
            self._subm[p] = PendingQueue()
            self._rank[p] = len(self._rank)
        g = self._static(job)
        tie = key[-1]
        capped = self.t - job.submit_time >= self._age_max
        if capped:
            lkey: Key = (-g, job.submit_time, tie)
            self._capped[p].push(lkey, job)
        else:
            lkey = (-(g - self._a * job.submit_time), job.submit_time, tie)
            self._young[p].push(lkey, job)
            self._subm[p].push((job.submit_time, tie), job)
        self._where[job.job_id] = capped
        self.n += 1
        if self._c_valid:
            gk = self._global_key(p, capped, lkey, job)
            ck = self._c_keys
            if self._c_complete or (ck and gk < ck[-1]):
                i = bisect_right(ck, gk)
                ck.insert(i, gk)
                self._c_jobs.insert(i, job)
                self._gkey[job.job_id] = gk

    def remove(self, job: PendingJob) -> None:
        p = job.project
        self._static_cache.pop(job.job_id, None)
        if self._where.pop(job.job_id):
            self._capped[p].remove(job)
        else:
            self._young[p].remove(job)
            self._subm[p].remove(job)
        self.n -= 1
        gk = self._gkey.pop(job.job_id, None)
        if gk is not None:
            i = bisect_left(self._c_keys, gk)
            assert self._c_jobs[i] is job
            del self._c_keys[i], self._c_jobs[i]

    def _drop_cache(self) -> None:
        self._c_valid = False
        self._c_keys = []
        self._c_jobs = []
        self._gkey = {}
        self._off = {}

    def recalc(self, t: float) -> None:
        """Move jobs that reached max age at ``t`` to the capped lists."""
        self._drop_cache()
        self.t = t
        horizon = t - self._age_max
        for p, subm in self._subm.items():
            while True:
                job = subm.head()
                if job is None or job.submit_time > horizon:
                    break
                subm.remove(job)
                self._young[p].remove(job)
                key = (-self._static(job), job.submit_time, float(self._sched._arrival(job)))
                self._capped[p].push(key, job)
                self._where[job.job_id] = True

    def head(self) -> PendingJob | None:
        if self._c_valid and self._c_jobs:
            return self._c_jobs[0]
        out = self.first(1)
        return out[0] if out else None

    def first(self, k: int) -> list[PendingJob]:
        if self._c_valid and (len(self._c_jobs) >= k or self._c_complete):
            return self._c_jobs[:k]
        want = k + 32  # slack: removals from the cached prefix need no new merge
        heap: list[tuple[float, float, int, int]] = []
        lists: list[tuple[list[Key], list[PendingJob], float, int]] = []
        rank = self._rank
        for capped, qs in ((False, self._young), (True, self._capped)):
            for p, q in qs.items():
                if q.n:
                    keys, jobs = q.first_items(want)
                    off = self._offset(p, capped)
                    heap.append((keys[0][0] - off, jobs[0].submit_time, len(lists), 0))
                    lists.append((keys, jobs, off, rank[p] + (_CAPPED if capped else 0)))
        heapq.heapify(heap)
        out: list[PendingJob] = []
        out_keys: list[tuple[float, float, int, Key]] = []
        gkey: dict[str, tuple[float, float, int, Key]] = {}
        while heap and len(out) < want:
            prio, sub, idx, pos = heap[0]
            keys, jobs, off, lrank = lists[idx]
            job = jobs[pos]
            gk = (prio, sub, lrank, keys[pos])
            out.append(job)
            out_keys.append(gk)
            gkey[job.job_id] = gk
            pos += 1
            if pos == len(jobs):
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (keys[pos][0] - off, jobs[pos].submit_time, idx, pos))
        self._c_keys, self._c_jobs, self._gkey = out_keys, out, gkey
        self._c_valid = True
        self._c_complete = len(out) < want
        return out[:k]

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.first(self.n))


class PriorityScheduler(Scheduler):
    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
        *,
        multifactor: bool = False,
        backfill: str = "none",
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self.multifactor = multifactor
        self.backfill = backfill
        self.name = (
            "+".join(
                (["multifactor"] if multifactor else [])
                + ([f"{backfill}-backfill"] if backfill != "none" else [])
            )
            or "fifo"
        )
        self._ends: list[tuple[float, str]] = []
        self._last_bf = -math.inf
        self._bf_dirty = True
        # conservative backfill keeps its profile and reservations between passes while
        # everything happens as planned (jobs end at their walltime, no arrivals inside
        # the examined window): each job is then reserved once, not once per pass
        self._prof: Profile | None = None
        self._resv: dict[str, tuple[float, float, int]] = {}  # in reservation order
        self._next_resv = math.inf
        # multifactor state: decayed usage per project at _usage_t, running GPUs per project
        self._usage: dict[str, float] = {}
        self._rate: dict[str, int] = {}
        self._usage_t = now
        self._shares: dict[str, float] = {}
        self._fs: dict[str, float] = {}
        self._calc_t = -math.inf
        for p, info in self.projects.items():
            self._shares[p] = info.share
            self._usage[p] = info.usage_gpu_s
        if params.shares:
            self._shares.update(params.shares)
        if multifactor:
            self.queue = MultifactorQueue(self)
            qp = params.qos_priority
            top = max(qp.values(), default=0.0)
            self._qos_norm = {q: (v / top if top > 0 else 0.0) for q, v in qp.items()}
            self._recalc_factors(now)
            self._calc_t = now

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
        rj = super().finish(job_id, now)
        if abs(rj.start_time + rj.walltime_s - now) > 1e-6:
            self._prof = None  # ended off its estimate: the profile is stale
        return rj

    def cancel(self, job_id: str) -> PendingJob:
        self._bf_dirty = True
        self._prof = None
        return super().cancel(job_id)

    def set_node_available(self, name: str, available: bool) -> list[RunningJob]:
        self._bf_dirty = True
        self._prof = None
        return super().set_node_available(name, available)

    def _on_start(self, rj: RunningJob) -> None:
        if self.backfill != "none":
            insort(self._ends, (rj.start_time + rj.walltime_s, rj.job_id))
        if self.multifactor:
            self._advance_usage(rj.start_time)
            self._rate[rj.project] = self._rate.get(rj.project, 0) + rj.gpus

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        if self.backfill != "none":
            ends = self._ends
            i = bisect_left(ends, (rj.start_time + rj.walltime_s, rj.job_id))
            del ends[i]
        if self.multifactor:
            self._advance_usage(now)
            self._rate[rj.project] -= rj.gpus

    # -- multifactor -------------------------------------------------------------------
    def _advance_usage(self, t: float) -> None:
        """Decay every project's usage to ``t`` and add what its running jobs used."""
        dt = t - self._usage_t
        if dt <= 0:
            return
        h = self.params.fairshare_half_life_s
        d = 2.0 ** (-dt / h)
        gain = h / LN2 * (1.0 - d)  # integral of the decay over dt, per GPU
        usage = self._usage
        for p in usage:
            usage[p] *= d
        for p, r in self._rate.items():
            if r:
                usage[p] = usage.get(p, 0.0) + r * gain
        self._usage_t = t

    def fairshare_factor(self, project: str) -> float:
        """Slurm's classic fair-share factor 2^(-usage_norm / share_norm), in (0, 1]."""
        f = self._fs.get(project)
        if f is None:
            self._shares.setdefault(project, 1.0)
            f = self._fs[project] = self._fs_value(project)
        return f

    def _fs_value(self, project: str) -> float:
        total_u = sum(self._usage.values())
        if total_u <= 0:
            return 1.0
        total_s = sum(self._shares.values())
        s_norm = self._shares.get(project, 1.0) / total_s
        u_norm = self._usage.get(project, 0.0) / total_u
        return float(2.0 ** (-u_norm / s_norm))

    def _recalc_factors(self, now: float) -> None:
        self._advance_usage(now)
        for p in self._usage:
            self._shares.setdefault(p, 1.0)
        self._fs = {p: self._fs_value(p) for p in self._shares}

    def priority(self, job: PendingJob, at: float) -> float:
        p = self.params
        age = at - job.submit_time
        age_f = 0.0 if age <= 0 else min(age / p.max_age_s, 1.0)
        cap = self.cluster.capacity or 1
        return (
            p.weight_age * age_f
            + p.weight_fairshare * self.fairshare_factor(job.project)
            + p.weight_jobsize * min(job.gpus / cap, 1.0)
            + p.weight_qos * self._qos_norm.get(job.qos, 0.0)
        )

    def static_priority(self, job: PendingJob) -> float:
        """The job-size and QOS terms (fixed for a job)."""
        p = self.params
        cap = self.cluster.capacity or 1
        return p.weight_jobsize * min(job.gpus / cap, 1.0) + p.weight_qos * self._qos_norm.get(
            job.qos, 0.0
        )

    def weight_fs_factor(self, project: str) -> float:
        return self.params.weight_fairshare * self.fairshare_factor(project)

    def _maybe_recalc(self, now: float, full: bool) -> None:
        if not full and now - self._calc_t < self.params.priority_calc_period_s:
            return
        self._recalc_factors(now)
        self._calc_t = now
        self._bf_dirty = True  # the next pass checks whether the order changed
        assert isinstance(self.queue, MultifactorQueue)
        self.queue.recalc(now)

    # -- the cycle ---------------------------------------------------------------------
    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        if self.multifactor:
            self._maybe_recalc(now, full)
            if self.params.priority_calc_period_s > 0 and self.pending:
                res.wake_at = self._calc_t + self.params.priority_calc_period_s
        head = self._main_pass(now, res)
        if head is None or self.backfill == "none":
            return
        if not full:
            resv_due = self._next_resv <= now and self._prof is not None
            if not (self._bf_dirty or resv_due):
                return
            due = self._last_bf + self.params.bf_interval_s
            if now < due and not resv_due:
                res.wake_at = due if res.wake_at is None else min(res.wake_at, due)
                return
        self._last_bf = now
        self._bf_dirty = False
        if self.backfill == "easy":
            self._easy(head, now, res)
        else:
            self._conservative(head, now, res)

    def _candidates(self) -> list[PendingJob]:
        return self.queue.first(self.params.bf_max_job_test + 1)[1:]  # after the head

    def _shadow(self, head: PendingJob, now: float) -> tuple[float, list[int]] | None:
        """When and on which GPUs ``head`` could start if running jobs end by their
        walltime estimates: (shadow time, projected free GPUs per node at that time)."""
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

    def _easy(self, head: PendingJob, now: float, res: CycleResult) -> None:
        c = self.cluster
        explain = self.explain
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
            rplan = plan_on(c, head, proj)
            assert rplan is not None
            spare = proj
            for i, k in rplan:
                spare[i] -= k
            if explain:
                res.reasons[head.job_id] = WaitReason(
                    "resources",
                    f"waiting for {head.gpus} GPUs ({c.free_for(head.gpu_type)} free); "
                    f"reserved to start by t={shadow:.0f}",
                )
        free = c.free
        caps = [f if f < s else s for f, s in zip(free, spare, strict=True)]
        caps_total = sum(caps)
        max_cap = max(caps, default=0)
        max_node = c.max_size
        reason_res = WaitReason(
            "reservation", f"would delay job {head.job_id} (reserved to start by t={shadow:.0f})"
        )
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
            if not long:
                plan = c.plan(job)
            elif g > caps_total or (
                max_cap < g <= max_node and job.nodes is None and job.gpus_per_node is None
            ):
                plan = None  # cannot fit beside the reservation (quick reject)
            else:
                plan = plan_on(c, job, caps)
            if plan is None:
                if explain:
                    res.reasons[job.job_id] = (
                        reason_res if long and c.plan(job) is not None else self.blocked_reason(job)
                    )
                continue
            self._start(job, plan, now, res)
            for i, k in plan:
                if long:
                    spare[i] -= k
                old = caps[i]
                caps[i] = free[i] if free[i] < spare[i] else spare[i]
                caps_total += caps[i] - old
            max_cap = max(caps)

    def _conservative(self, head: PendingJob, now: float, res: CycleResult) -> None:
        self._next_resv = math.inf
        if self._prof is not None and not self.explain and self._incremental(head, now, res):
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
        False: something is off plan (a reserved job cannot start when due), recompute
        from scratch."""
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
                    plan = c.plan(job)
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
                plan = c.plan(job)
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
        PriorityScheduler._unreserve(prof, r)
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
            d = job.walltime_s
            s = prof.earliest(job.gpus, d)
            if s is None:  # cannot happen while gpus <= capacity; stay safe
                res.reasons[job.job_id] = self.blocked_reason(job)
                continue
            if s <= now and job is not head:
                plan = c.plan(job)
                if plan is not None:
                    self._start(job, plan, now, res)
                    prof.reserve(now, now + d, job.gpus)
                    continue
            if s <= now:  # fits by count but fragmented now: reserve from the next step on
                s2 = prof.earliest(job.gpus, d, 1)
                s = s2 if s2 is not None else now
            prof.reserve(s, s + d, job.gpus)
            self._resv[job.job_id] = (s, d, job.gpus)
            if not self.explain:
                pass
            elif job is head:
                res.reasons[job.job_id] = WaitReason(
                    res.reasons[job.job_id].code,
                    f"{res.reasons[job.job_id].message}; reserved to start by t={s:.0f}",
                )
            else:
                r = self.blocked_reason(job) if c.plan(job) is None else None
                res.reasons[job.job_id] = WaitReason(
                    r.code if r else "reservation",
                    (r.message + "; " if r else "would delay earlier reservations; ")
                    + f"reserved to start by t={s:.0f}",
                )
            if c.free_total == 0:
                break
        if not self.explain:
            self._prof = prof
