"""Advance reservations: GPUs held for a time window (Slurm's ``scontrol create
reservation``).

``ReservationBook`` is what a scheduler consults before it places a job: for a job and a
start time it caps the free GPUs per node so that

- a job outside a reservation never holds that reservation's GPUs at any time of the
  window: a job whose walltime would cross the start of a reservation that needs its GPUs
  does not start there (and nothing runs into a maintenance reservation);
- a job that asks for a reservation (``PendingJob.reservation``, Slurm's
  ``--reservation``) runs only on its GPUs, only inside its window (start to end, walltime
  included), and only if its project is one of the reservation's.

The rule for outsiders is conservative: all reservations overlapping the job's run are
counted as if they were active at once, and every running outside job on the node that is
still running when the first of them starts counts against the rest. By induction over
starts this bounds what outsiders hold at every instant of every window (the property
tests check it on random cases).

``resolve_gpus`` chooses the GPUs a new reservation holds (named nodes: all their GPUs;
a count: packed on the fewest nodes of the type) and refuses what the inventory cannot
hold beside the reservations it overlaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    Reservation,
    RunningJob,
    WaitReason,
    starts_in,
)


class ReservationError(ValueError):
    """A reservation the inventory cannot hold (the message says why, for people)."""


def resolve_gpus(
    nodes: Sequence[Node],
    existing: Iterable[Reservation],
    start: float,
    end: float,
    *,
    count: int | None = None,
    gpu_type: str | None = None,
    node_names: Sequence[str] = (),
) -> tuple[tuple[str, int], ...]:
    """The GPUs per node a new reservation on ``[start, end)`` holds. Named nodes are held
    whole; a ``count`` is packed onto the fewest nodes (of ``gpu_type`` if given) that the
    overlapping reservations leave free, whole nodes first."""
    if end <= start:
        raise ReservationError("the reservation ends before it starts")
    by_name = {n.name: n for n in nodes}
    held: dict[str, int] = {}
    for r in existing:
        if r.overlaps(start, end):
            for name, k in r.gpus:
                held[name] = held.get(name, 0) + k
    if node_names:
        if count is not None:
            raise ReservationError("give either nodes or a GPU count, not both")
        out = []
        for name in node_names:
            node = by_name.get(name)
            if node is None:
                raise ReservationError(f"unknown node {name!r}")
            if gpu_type is not None and node.gpu_type != gpu_type:
                raise ReservationError(f"node {name!r} has {node.gpu_type} GPUs, not {gpu_type}")
            if held.get(name, 0):
                raise ReservationError(
                    f"node {name!r} is already reserved in that window by another reservation"
                )
            out.append((name, node.gpus))
        if len({n for n, _ in out}) != len(out):
            raise ReservationError("a node is named twice")
        return tuple(out)
    if count is None or count < 1:
        raise ReservationError("give the nodes to reserve or a GPU count of at least 1")
    cands = [n for n in nodes if gpu_type is None or n.gpu_type == gpu_type]
    if gpu_type is not None and not cands:
        raise ReservationError(f"no nodes with GPU type {gpu_type!r}")
    left = {n.name: n.gpus - held.get(n.name, 0) for n in cands}
    total = sum(max(0, v) for v in left.values())
    if count > total:
        what = f"{gpu_type} GPUs" if gpu_type else "GPUs"
        raise ReservationError(
            f"{count} {what} requested but only {total} are not reserved in that window"
            f" (inventory: {sum(n.gpus for n in cands)})"
        )
    # whole free nodes first (largest first), then the node that fits the rest best
    order = sorted(cands, key=lambda n: (-left[n.name], n.name))
    out = []
    need = count
    for n in order:
        k = left[n.name]
        if need >= k > 0:
            out.append((n.name, k))
            need -= k
    if need:
        rest = min(
            (n for n in order if left[n.name] >= need and all(n.name != o for o, _ in out)),
            key=lambda n: (left[n.name], n.name),
        )
        out.append((rest.name, need))
    return tuple(sorted(out))


def clock_time(t: float) -> str:
    """A time on the live loop's axis (epoch seconds) as people read it: "14:00 UTC" today's
    or "2026-12-03 14:00 UTC"; small values (a simulation's axis) as seconds."""
    if t < 1e9:
        return f"t={t:.0f} s"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


class ReservationBook:
    """The reservations one scheduler plans around (node names resolved to indices)."""

    __slots__ = ("by_name", "held", "index", "items", "size")

    def __init__(self, reservations: Iterable[Reservation], nodes: Sequence[Node]) -> None:
        self.index = {n.name: i for i, n in enumerate(nodes)}
        self.size = [n.gpus for n in nodes]
        self.items = tuple(sorted(reservations, key=lambda r: (r.start, r.name)))
        self.by_name = {r.name: r for r in self.items}
        # per reservation: (node index, GPUs held); unknown nodes (left the inventory) skip
        self.held: dict[str, list[tuple[int, int]]] = {
            r.name: [(self.index[n], k) for n, k in r.gpus if n in self.index]
            for r in self.items
        }

    def relevant(self, now: float) -> bool:
        return any(r.end > now for r in self.items)

    def next_boundary(self, now: float) -> float:
        """The next start or end of a reservation after ``now`` (inf: none)."""
        return min(
            (t for r in self.items for t in (r.start, r.end) if t > now), default=math.inf
        )

    def view(
        self,
        job: PendingJob,
        start: float,
        free: Sequence[int],
        running: Mapping[str, RunningJob],
    ) -> list[int] | None:
        """``free`` capped to what ``job`` may use if it starts at ``start``; None: it may
        not start at that time at all."""
        end = start + job.walltime_s
        if job.reservation is not None:
            r = self.by_name.get(job.reservation)
            if r is None or not r.admits(job) or start < r.start or end > r.end:
                return None
            out = [0] * len(free)
            for i, k in self.held[r.name]:
                out[i] = k
            for rj in running.values():
                if rj.reservation == r.name:
                    for name, idx in rj.placement:
                        i = self.index[name]
                        out[i] -= len(idx)
            return [f if f < o else max(o, 0) for f, o in zip(free, out, strict=True)]
        over = [r for r in self.items if r.overlaps(start, end)]
        if not over:
            return list(free)
        held: dict[int, int] = {}
        first: dict[int, float] = {}  # per node: when the first overlapping hold begins
        for r in over:
            s = max(r.start, start)
            for i, k in self.held[r.name]:
                held[i] = held.get(i, 0) + k
                if s < first.get(i, math.inf):
                    first[i] = s
        busy = dict.fromkeys(held, 0)  # outside jobs still running when the hold begins
        for rj in running.values():
            if rj.reservation in self.by_name:  # on its reservation's GPUs (a deleted
                continue  # reservation's jobs count as outside ones)
            rend = rj.start_time + rj.walltime_s
            for name, idx in rj.placement:
                i = self.index[name]
                if i in busy and rend > first[i]:
                    busy[i] += len(idx)
        out = list(free)
        for i, k in held.items():
            cap = self.size[i] - k - busy[i]
            if out[i] > cap:
                out[i] = max(cap, 0)
        return out

    def why(self, job: PendingJob, now: float, would_fit: bool) -> WaitReason | None:
        """The reason in words when a reservation keeps ``job`` from starting now;
        ``would_fit``: it would start now if there were no reservations."""
        if job.reservation is not None:
            r = self.by_name.get(job.reservation)
            name = job.reservation
            if r is None or not r.admits(job):
                return WaitReason(
                    "reservation",
                    f"reservation {name!r} does not exist or is not open to project "
                    f"{job.project}",
                )
            if now >= r.end:
                return WaitReason("reservation", f"reservation {name!r} has ended")
            if now + job.walltime_s > r.end:
                return WaitReason(
                    "reservation",
                    f"its walltime would run past the end of reservation {name!r} "
                    f"({clock_time(r.end)})",
                )
            if now < r.start:
                return WaitReason(
                    "reservation",
                    f"waiting for reservation {name!r} to start at {clock_time(r.start)} "
                    f"({starts_in(r.start - now)})",
                )
            return WaitReason(
                "reservation", f"waiting for GPUs inside reservation {name!r}"
            )
        if not would_fit:
            return None
        end = now + job.walltime_s
        over = [r for r in self.items if r.overlaps(now, end)]
        if not over:
            return None
        r = min(over, key=lambda r: (r.start, r.name))
        what = "for maintenance" if r.maintenance else "by reservation"
        if r.start <= now:
            return WaitReason(
                "reservation",
                f"reserved {what} {r.name!r} until {clock_time(r.end)}",
            )
        return WaitReason(
            "reservation",
            f"reserved {what} {r.name!r} from {clock_time(r.start)} "
            f"({starts_in(r.start - now)}); its walltime would run into it",
        )
