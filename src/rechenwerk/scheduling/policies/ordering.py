"""Ordering axis: how the pending queue is keyed (Slurm's priority plugins).

- ``FifoOrdering`` - submit order, ties by arrival (Slurm ``PriorityType=priority/basic``).
  It is ``Scheduler``'s own key, so the mixin adds nothing.
- ``MultifactorOrdering`` - Slurm ``priority/multifactor``: age, fair share (classic
  ``2^(-usage/share)`` with usage decayed by ``fairshare_half_life_s``), job size and
  QOS, recalculated every ``priority_calc_period_s`` (``PriorityCalcPeriod``). The queue
  is a ``MultifactorQueue``, which never re-sorts.

Either is combined with one backfill mixin (``backfill.py``) by ``policies.compose``.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, Key, PendingQueue
from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    PriorityFactors,
    ProjectInfo,
    RunningJob,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies.base import QueueScheduler

LN2 = math.log(2.0)
_CAPPED = 1 << 40  # capped lists come after all young lists in the merge tie-break


# A job's place in the merged multifactor order: its priority key minus its list's
# offset as an exact sum (rounded value, rounding error), then submit time, list, list key.
GlobalKey = tuple[float, float, float, int, Key]


def exact_difference(a: float, b: float) -> tuple[float, float]:
    """``a - b`` as ``(s, e)`` with ``s = fl(a - b)`` and ``s + e == a - b`` exactly
    (Knuth's TwoSum). Tuples of these compare as the exact differences do: rounding is
    monotone, so ``s`` orders all but ties, and ``e`` breaks a tie exactly. Comparing
    rounded differences alone merged keys one ulp apart (240.2863756613756 and ...57
    minus one offset) and let the merge disagree with the lists' order."""
    s = a - b
    bv = s - a
    av = s - bv
    return s, (a - av) + (-b - bv)


class FifoOrdering(QueueScheduler):
    """Submit order (``Scheduler._order_key``): nothing to add."""


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
        "_k_max",
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

    def __init__(self, sched: MultifactorOrdering) -> None:
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
        self._c_keys: list[GlobalKey] = []
        self._c_jobs: list[PendingJob] = []
        self._gkey: dict[str, GlobalKey] = {}
        self._c_valid = False
        self._c_complete = False
        self._k_max = 1  # the largest ``first`` request (bounded by the queue's length)

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

    def _global_key(self, p: str, capped: bool, key: Key, job: PendingJob) -> GlobalKey:
        """The job's position in the merged order (what ``first`` compares)."""
        rank = self._rank[p] + (_CAPPED if capped else 0)
        hi, lo = exact_difference(key[0], self._offset(p, capped))
        return (hi, lo, job.submit_time, rank, key)

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
        """The first job of the merged order. Without a cached prefix, the least of the
        lists' heads (O(lists), as ``first`` would pick it: same keys, ties by list): the
        main pass after a recalculation needs only the head, a merge of the first
        ``bf_max_job_test`` jobs waits for a backfill pass that asks for them."""
        if self._c_valid and (self._c_jobs or self._c_complete):
            return self._c_jobs[0] if self._c_jobs else None
        best: tuple[float, float, float, int] | None = None
        out: PendingJob | None = None
        rank = self._rank
        for capped, qs in ((False, self._young), (True, self._capped)):
            for p, q in qs.items():
                if q.n:
                    job = q.head()
                    assert job is not None
                    hi, lo = exact_difference(q.head_key()[0], self._offset(p, capped))
                    cand = (hi, lo, job.submit_time, rank[p] + (_CAPPED if capped else 0))
                    if best is None or cand < best:
                        best, out = cand, job
        return out

    def first(self, k: int) -> list[PendingJob]:
        if self._c_valid and (len(self._c_jobs) >= k or self._c_complete):
            return self._c_jobs[:k]
        # slack: removals from the cached prefix need no new merge; and as many as the
        # largest request so far, so the head's merge (``head``, the main pass) already
        # serves the backfill pass's ``first(bf_max_job_test + 1)`` that follows it
        if k > self._k_max:
            self._k_max = min(k, self.n)
        want = max(k, self._k_max) + 32
        # (priority, its rounding error, submit time, list, position): the first two
        # give each job's exact priority, so the merge order is the lists' own order.
        heap: list[tuple[float, float, float, int, int]] = []
        lists: list[tuple[list[Key], list[PendingJob], float, int]] = []
        rank = self._rank
        for capped, qs in ((False, self._young), (True, self._capped)):
            for p, q in qs.items():
                if q.n:
                    keys, jobs = q.first_items(want)
                    off = self._offset(p, capped)
                    hi, lo = exact_difference(keys[0][0], off)
                    heap.append((hi, lo, jobs[0].submit_time, len(lists), 0))
                    lists.append((keys, jobs, off, rank[p] + (_CAPPED if capped else 0)))
        heapq.heapify(heap)
        out: list[PendingJob] = []
        out_keys: list[GlobalKey] = []
        gkey: dict[str, GlobalKey] = {}
        while heap and len(out) < want:
            hi, lo, sub, idx, pos = heap[0]
            keys, jobs, off, lrank = lists[idx]
            job = jobs[pos]
            gk = (hi, lo, sub, lrank, keys[pos])
            out.append(job)
            out_keys.append(gk)
            gkey[job.job_id] = gk
            pos += 1
            if pos == len(jobs):
                heapq.heappop(heap)
            else:
                hi, lo = exact_difference(keys[pos][0], off)
                heapq.heapreplace(heap, (hi, lo, jobs[pos].submit_time, idx, pos))
        self._c_keys, self._c_jobs, self._gkey = out_keys, out, gkey
        self._c_valid = True
        self._c_complete = len(out) < want
        return out[:k]

    def __iter__(self) -> Iterator[PendingJob]:
        return iter(self.first(self.n))


class MultifactorOrdering(QueueScheduler):
    """Slurm multifactor priority with fair share; see ``MultifactorQueue`` for the order.

    Usage is tracked exactly: ``_usage`` is each project's usage decayed to
    ``_usage_t``, ``_rate`` its running GPUs, so decay and accrual between two events
    are one closed-form step."""

    queue: MultifactorQueue

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self._usage: dict[str, float] = {}
        self._rate: dict[str, int] = {}
        self._usage_t = now
        self._shares: dict[str, float] = {}
        self._fs: dict[str, float] = {}
        for p, info in self.projects.items():
            self._shares[p] = info.share
            self._usage[p] = info.usage_gpu_s
        if params.shares:
            self._shares.update(params.shares)
        self.queue = MultifactorQueue(self)
        qp = params.qos_priority
        top = max(qp.values(), default=0.0)
        self._qos_norm = {q: (v / top if top > 0 else 0.0) for q, v in qp.items()}
        self._recalc_factors(now)
        self._calc_t = now

    # -- running jobs accrue usage ---------------------------------------------------
    def _on_start(self, rj: RunningJob) -> None:
        self._advance_usage(rj.start_time)
        self._rate[rj.project] = self._rate.get(rj.project, 0) + rj.gpus

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        self._advance_usage(now)
        self._rate[rj.project] -= rj.gpus

    def _advance_usage(self, t: float) -> None:
        """Decay every project's usage to ``t`` and add what its running jobs used."""
        dt = t - self._usage_t
        if dt <= 0:
            return
        h = self.params.fairshare_half_life_s
        if h == math.inf:  # no decay (Slurm's PriorityDecayHalfLife=0)
            d, gain = 1.0, dt
        else:
            d = 2.0 ** (-dt / h)
            gain = h / LN2 * (1.0 - d)  # integral of the decay over dt, per GPU
        usage = self._usage
        for p in usage:
            usage[p] *= d
        for p, r in self._rate.items():
            if r:
                usage[p] = usage.get(p, 0.0) + r * gain
        self._usage_t = t

    # -- the factors -----------------------------------------------------------------
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

    order_rule = "by multifactor priority, highest first (age, fair share, size, QOS)"

    def queue_order(self, now: float) -> list[PendingJob]:
        """The order after a priority recalculation at ``now`` (the loop recalculates
        every ``priority_calc_period_s``, so its order can be that much older)."""
        self._maybe_recalc(now, True)
        return list(self.queue)

    def current_order(self, now: float) -> list[PendingJob]:
        """The order of the last recalculation (no recalculation here)."""
        return list(self.queue)

    def priority_factors(self, job: PendingJob, now: float) -> PriorityFactors:
        p = self.params
        age = now - job.submit_time
        cap = self.cluster.capacity or 1
        return PriorityFactors(
            age=p.weight_age * (0.0 if age <= 0 else min(age / p.max_age_s, 1.0)),
            fairshare=p.weight_fairshare * self.fairshare_factor(job.project),
            jobsize=p.weight_jobsize * min(job.gpus / cap, 1.0),
            qos=p.weight_qos * self._qos_norm.get(job.qos, 0.0),
        )

    def weight_fs_factor(self, project: str) -> float:
        return self.params.weight_fairshare * self.fairshare_factor(project)

    # -- recalculation (PriorityCalcPeriod) ------------------------------------------
    def _maybe_recalc(self, now: float, full: bool) -> None:
        if not full and now - self._calc_t < self.params.priority_calc_period_s:
            return
        self._recalc_factors(now)
        self._calc_t = now
        self._order_changed()  # the next backfill pass checks whether the order changed
        self.queue.recalc(now)

    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        self._maybe_recalc(now, full)
        if self.params.priority_calc_period_s > 0 and self.pending:
            res.wake_at = self._calc_t + self.params.priority_calc_period_s
        self._passes(now, res, full)
