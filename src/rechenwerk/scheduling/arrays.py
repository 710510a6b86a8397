"""Job arrays (Slurm's ``--array``): the index expression, and the ``%N`` limit on how
many tasks of one array run at once.

Pure, like the rest of the core: the jobs domain stores each task as its own job, the
simulator expands a trace's arrays, and both hold back the tasks beyond an array's
limit with :func:`hold_array_excess` before the policy sees them.

Expressions, as Slurm's: ``0-99`` (a range), ``0-99:2`` (with a step), ``1,3,5-7`` (a
list of those), each optionally followed by ``%N`` (at most N tasks running at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rechenwerk.scheduling.model import PendingJob, Snapshot, WaitReason

# Largest task index: the database's 32-bit integer columns (Slurm's own MaxArraySize
# defaults to 1001; an operator limit on the count applies in the jobs domain).
MAX_ARRAY_INDEX = 2**31 - 2
ARRAY_LIMIT_CODE = "array_limit"

_ITEM_RE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


@dataclass(frozen=True, slots=True)
class ArrayExpression:
    """A parsed ``--array`` expression: its task indices (ascending, distinct) and the
    limit of tasks running at once (None: no limit)."""

    indices: tuple[int, ...]
    limit: int | None = None

    @property
    def count(self) -> int:
        return len(self.indices)

    def text(self) -> str:
        """The canonical expression: ``0-99%10``, ``1,3,5-7``."""
        body = compress_indices(self.indices)
        return f"{body}%{self.limit}" if self.limit is not None else body


def parse_array(expression: str, *, max_tasks: int) -> ArrayExpression:
    """Parse ``0-99%10``, ``0-99:2``, ``1,3,5-7``; raises ValueError saying what is wrong
    (the caller names the field)."""
    if not isinstance(expression, str):
        raise ValueError("must be an index expression such as '0-99', '1,3,5-7' or '0-99%10'")
    text = expression.strip().replace(" ", "")
    if not text:
        raise ValueError("is empty; give task indices such as '0-99' or '0-99%10'")
    body, sep, limit_text = text.partition("%")
    limit: int | None = None
    if sep:
        if not limit_text.isdigit():
            raise ValueError(
                f"{expression!r}: the limit after '%' must be a whole number of tasks "
                "running at once, e.g. '0-99%10'")
        limit = int(limit_text)
        if limit < 1:
            raise ValueError(f"{expression!r}: the limit after '%' must be at least 1")
    if not body:
        raise ValueError(f"{expression!r} names no task indices; e.g. '0-99%10'")
    ranges: list[range] = []
    for item in body.split(","):  # every item validated before any index is built
        m = _ITEM_RE.match(item)
        if m is None:
            raise ValueError(
                f"{expression!r}: {item!r} is not an index, a range 'A-B' or a range with "
                "a step 'A-B:S' (indices are whole numbers from 0)")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3)) if m.group(3) is not None else 1
        if last < first:
            raise ValueError(f"{expression!r}: range {item!r} ends before it starts")
        if step < 1:
            raise ValueError(f"{expression!r}: the step in {item!r} must be at least 1")
        if last > MAX_ARRAY_INDEX:
            raise ValueError(f"{expression!r}: task indices are at most {MAX_ARRAY_INDEX}")
        ranges.append(range(first, last + 1, step))
    # Distinct indices, stopping one past the limit: "0-999999999" costs nothing.
    seen: set[int] = set()
    for r in ranges:
        for i in r:
            seen.add(i)
            if len(seen) > max_tasks:
                raise ValueError(
                    f"{expression!r} names more than {max_tasks} tasks, the limit of one "
                    "array here; split the sweep into several arrays or ask an operator")
    return ArrayExpression(tuple(sorted(seen)), limit)


def compress_indices(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (as squeue prints an array's indices)."""
    out: list[str] = []
    ordered = sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def task_name(array_job_id: int | str, index: int) -> str:
    """A task as Slurm shows it: ``123_4``."""
    return f"{array_job_id}_{index}"


def limit_reason(limit: int) -> WaitReason:
    return WaitReason(ARRAY_LIMIT_CODE,
                      f"array task limit: at most {limit} of the array's tasks run at once")


def hold_array_excess(snap: Snapshot) -> tuple[Snapshot, dict[str, WaitReason]]:
    """The snapshot without the pending array tasks beyond their array's ``%N`` limit
    (counting its running tasks), and the reason each held task waits. Tasks are let
    through in arrival order (lowest index first), so the policy may start at most the
    free slots of each array in this cycle."""
    limited = [j for j in snap.pending if j.array_id is not None and j.array_limit]
    if not limited:
        return snap, {}
    running: dict[str, int] = {}
    for rj in snap.running:
        if rj.array_id is not None:
            running[rj.array_id] = running.get(rj.array_id, 0) + 1
    admitted: dict[str, int] = {}
    held: dict[str, WaitReason] = {}
    for job in sorted(limited, key=task_order):
        aid, cap = job.array_id, job.array_limit
        assert aid is not None and cap is not None
        busy = running.get(aid, 0)
        if busy + admitted.get(aid, 0) < cap:
            admitted[aid] = admitted.get(aid, 0) + 1
        else:
            held[job.job_id] = limit_reason(cap)
    if not held:
        return snap, {}
    pending: Sequence[PendingJob] = tuple(j for j in snap.pending if j.job_id not in held)
    return replace(snap, pending=tuple(pending)), held


def task_order(job: PendingJob) -> tuple[float, int, str]:
    """The order an array's tasks are let through: submission, then index."""
    return (job.submit_time, job.array_index if job.array_index is not None else 0,
            job.job_id)
