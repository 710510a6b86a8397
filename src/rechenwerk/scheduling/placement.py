"""Where a job goes: gang placement on exact GPUs.

``ClusterState`` is the mutable working copy of the cluster that one scheduling cycle
(or the simulator, across cycles) updates incrementally: per node a free-GPU bitmask and
count, and per GPU type buckets of nodes by free count so that best-fit for a single-node
job costs at most ``gpus_per_node`` set look-ups, not a scan of the cluster.

Rules (all policies):
- gang: a job gets all its GPUs at once or nothing;
- a job that fits one node goes to the node with the fewest free GPUs that still holds it
  (best fit: keeps whole nodes free for large jobs);
- a larger job takes whole nodes (``ceil(gpus / gpus_per_node)`` nodes, the last one
  possibly partly) in as few topology blocks as possible; an explicit
  ``nodes``/``gpus_per_node`` shape is honoured exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from rechenwerk.scheduling.model import Node, PendingJob, Placement

Plan = list[tuple[int, int]]  # (node index, GPUs on that node)


class ClusterState:
    __slots__ = (
        "_shapes",
        "avail",
        "block_nodes",
        "block_of",
        "buckets",
        "capacity",
        "free",
        "free_by_type",
        "free_total",
        "index",
        "mask",
        "max_size",
        "names",
        "nodes",
        "size",
        "type_names",
        "type_of",
    )

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)
        self.names = [n.name for n in self.nodes]
        self.index = {name: i for i, name in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("node names must be unique")
        self.size = [n.gpus for n in self.nodes]
        self.type_of = [n.gpu_type for n in self.nodes]
        self.type_names = sorted(set(self.type_of))
        blocks = sorted({n.block for n in self.nodes})
        bidx = {b: i for i, b in enumerate(blocks)}
        self.block_of = [bidx[n.block] for n in self.nodes]
        self.block_nodes: list[list[int]] = [[] for _ in blocks]
        for i, n in enumerate(self.nodes):
            self.block_nodes[bidx[n.block]].append(i)
        self.max_size = max(self.size, default=0)
        self._shapes: dict[tuple[int, int | None, int | None], tuple[int, ...]] = {}
        self.free = list(self.size)
        self.mask = [(1 << g) - 1 for g in self.size]
        self.avail = [n.available for n in self.nodes]
        self.buckets: dict[str, list[set[int]]] = {
            t: [set() for _ in range(self.max_size + 1)] for t in self.type_names
        }
        self.free_by_type = dict.fromkeys(self.type_names, 0)
        self.free_total = 0
        self.capacity = 0
        for i in range(len(self.nodes)):
            if self.avail[i]:
                self._enter(i)
                self.capacity += self.size[i]

    # -- bookkeeping -------------------------------------------------------------------
    def _enter(self, i: int) -> None:
        f = self.free[i]
        self.buckets[self.type_of[i]][f].add(i)
        self.free_by_type[self.type_of[i]] += f
        self.free_total += f

    def _leave(self, i: int) -> None:
        f = self.free[i]
        self.buckets[self.type_of[i]][f].discard(i)
        self.free_by_type[self.type_of[i]] -= f
        self.free_total -= f

    def set_available(self, name: str, available: bool) -> None:
        i = self.index[name]
        if self.avail[i] == available:
            return
        if available:
            self.avail[i] = True
            self._enter(i)
            self.capacity += self.size[i]
        else:
            self._leave(i)
            self.avail[i] = False
            self.capacity -= self.size[i]

    def free_for(self, gpu_type: str | None) -> int:
        return self.free_total if gpu_type is None else self.free_by_type.get(gpu_type, 0)

    def capacity_for(self, gpu_type: str | None) -> int:
        if gpu_type is None:
            return self.capacity
        return sum(
            s
            for s, t, a in zip(self.size, self.type_of, self.avail, strict=True)
            if a and t == gpu_type
        )

    # -- shapes ------------------------------------------------------------------------
    def shape(self, job: PendingJob) -> tuple[int, ...]:
        """GPUs per node the job needs, largest first (one entry per node)."""
        key = (job.gpus, job.nodes, job.gpus_per_node)
        got = self._shapes.get(key)
        if got is None:
            got = self._shapes[key] = self._shape(job)
        return got

    def _shape(self, job: PendingJob) -> tuple[int, ...]:
        g = job.gpus
        if job.nodes is not None:
            per = job.gpus_per_node or -(-g // job.nodes)
            return (per,) * job.nodes
        if job.gpus_per_node is not None:
            per = job.gpus_per_node
            n, r = divmod(g, per)
            return (per,) * n + ((r,) if r else ())
        if g <= self.max_size:
            return (g,)
        n, r = divmod(g, self.max_size)
        return (self.max_size,) * n + ((r,) if r else ())

    # -- planning ----------------------------------------------------------------------
    def plan(self, job: PendingJob) -> Plan | None:
        """Where ``job`` would go now (node index, GPU count), or None. No mutation."""
        g = job.gpus
        if g > self.free_total:
            return None
        if job.nodes is None and job.gpus_per_node is None and g <= self.max_size:
            types = self.type_names if job.gpu_type is None else (job.gpu_type,)
            best = -1
            best_free = 1 << 30
            for t in types:
                b = self.buckets.get(t)
                if b is None:
                    continue
                for k in range(g, min(best_free, self.max_size + 1)):
                    if b[k]:
                        best, best_free = min(b[k]), k
                        break
            return None if best < 0 else [(best, g)]
        shape = self.shape(job)
        if job.gpu_type is None and len(self.type_names) == 1:
            # necessary: all parts but the last need nodes with >= shape[0] free GPUs
            b = self.buckets[self.type_names[0]]
            big = shape[0]
            if big > self.max_size:
                return None
            n_big = 0
            for k in range(big, self.max_size + 1):
                n_big += len(b[k])
            if n_big < shape.count(big):
                return None
        if len(shape) == 1:  # one node (``nodes=1`` or ``gpus_per_node`` >= gpus)
            if job.gpu_type is None and len(self.type_names) != 1:
                return plan_on(self, job, self.free)
            # best fit from the buckets, as ``plan_on`` picks it (fewest free GPUs that
            # suffice, then the lowest node index) without scanning every node
            bk = self.buckets.get(job.gpu_type or self.type_names[0])
            if bk is None:
                return None
            need = shape[0]
            for k in range(need, self.max_size + 1):
                if bk[k]:
                    return [(min(bk[k]), need)]
            return None
        # the eligible nodes with free GPUs from the buckets (only the nodes that are not
        # full: on a large busy cluster far fewer than a scan of every node), then the
        # same placement as ``plan_on`` on the live view
        free = self.free
        block_of = self.block_of
        per_block: dict[int, list[int]] = {}
        total = 0
        for t in (self.type_names if job.gpu_type is None else (job.gpu_type,)):
            b = self.buckets.get(t)
            if b is None:
                continue
            for k in range(1, self.max_size + 1):
                for i in b[k]:
                    total += k
                    per_block.setdefault(block_of[i], []).append(i)
        return _place_multi(self, shape, free, per_block, total)

    def allocate(self, plan: Plan) -> Placement:
        out = []
        for i, count in plan:
            m = self.mask[i]
            idx: list[int] = []
            bit = 0
            while len(idx) < count:
                if m >> bit & 1:
                    idx.append(bit)
                    m &= ~(1 << bit)
                bit += 1
            self._take(i, count, m)
            out.append((self.names[i], tuple(idx)))
        return tuple(out)

    def _take(self, i: int, count: int, new_mask: int) -> None:
        if self.avail[i]:
            t = self.type_of[i]
            f = self.free[i]
            b = self.buckets[t]
            b[f].discard(i)
            b[f - count].add(i)
            self.free_by_type[t] -= count
            self.free_total -= count
        self.free[i] -= count
        self.mask[i] = new_mask

    def allocate_exact(self, placement: Placement) -> None:
        """Mark the GPUs of an existing allocation busy (building state from a snapshot)."""
        for name, gpus in placement:
            i = self.index[name]
            m = self.mask[i]
            for g in gpus:
                if not (m >> g) & 1:
                    raise ValueError(f"GPU {g} of node {name} is allocated twice")
                m &= ~(1 << g)
            self._take(i, len(gpus), m)

    def release(self, placement: Placement) -> None:
        for name, gpus in placement:
            i = self.index[name]
            m = self.mask[i]
            for g in gpus:
                m |= 1 << g
            count = len(gpus)
            if self.avail[i]:
                t = self.type_of[i]
                f = self.free[i]
                b = self.buckets[t]
                b[f].discard(i)
                b[f + count].add(i)
                self.free_by_type[t] += count
                self.free_total += count
            self.free[i] += count
            self.mask[i] = m

    def plan_counts(self, placement: Placement) -> Plan:
        return [(self.index[name], len(g)) for name, g in placement]


def plan_on(state: ClusterState, job: PendingJob, free: Sequence[int]) -> Plan | None:
    """Generic placement against an arbitrary per-node free-GPU view (the live one, a
    projection into the future, or one capped by a backfill reservation)."""
    shape = state.shape(job)
    gt = job.gpu_type
    avail = state.avail
    type_of = state.type_of
    if len(shape) == 1:
        need = shape[0]
        best, best_free = -1, 1 << 30
        for i, f in enumerate(free):
            if need <= f < best_free and avail[i] and (gt is None or type_of[i] == gt):
                best, best_free = i, f
        return None if best < 0 else [(best, need)]
    # one pass: eligible nodes with free GPUs, grouped by block
    per_block: dict[int, list[int]] = {}
    total = 0
    block_of = state.block_of
    for i, f in enumerate(free):
        if f > 0 and avail[i] and (gt is None or type_of[i] == gt):
            total += f
            per_block.setdefault(block_of[i], []).append(i)
    return _place_multi(state, shape, free, per_block, total)


def _place_multi(
    state: ClusterState,
    shape: Sequence[int],
    free: Sequence[int],
    per_block: dict[int, list[int]],
    total: int,
) -> Plan | None:
    """``plan_on`` for a multi-node shape, given the eligible nodes with free GPUs grouped
    by block (in any order: they are sorted here) and their free GPUs in total."""
    need_total = sum(shape)
    if total < need_total:
        return None
    for nodes in per_block.values():
        nodes.sort(key=lambda i: (free[i], i))

    def fill(cands: list[int], counts: Sequence[int]) -> Plan | None:
        used: set[int] = set()
        out: Plan = []
        for c in counts:  # largest first; best-fit node for each part
            for i in cands:
                if i not in used and free[i] >= c:
                    used.add(i)
                    out.append((i, c))
                    break
            else:
                return None
        return out

    # 1. one block suffices: choose the tightest such block (fewest free GPUs)
    best_plan: Plan | None = None
    best_key = (1 << 30, 0)
    block_free = {b: sum(free[i] for i in nodes) for b, nodes in per_block.items()}
    for b in sorted(per_block):
        if block_free[b] >= need_total:
            p = fill(per_block[b], shape)
            if p is not None and (block_free[b], b) < best_key:
                best_plan, best_key = p, (block_free[b], b)
    if best_plan is not None:
        return best_plan
    # 2. spread over as few blocks as possible: fullest blocks first
    order = sorted(per_block, key=lambda b: (-block_free[b], b))
    return fill([i for b in order for i in per_block[b]], shape)
