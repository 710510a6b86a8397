"""A centre's own job history as a trace: the part shared by the sacct reader
(``sacct.py``) and the import from Rechenwerk's job table (``jobs/trace_import.py``).

Both produce :class:`HistoryJob` rows with absolute submit times; :func:`history_trace`
makes them relative to the first submission, drops dependencies on jobs that are not in
the trace (they never started, or fall outside ``--since/--until``) and counts what was
left out, so the CLI can say so."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rechenwerk.simulation.traces.base import QOS_VALUES, Trace, TraceJob


@dataclass(frozen=True, slots=True)
class HistoryJob:
    job_id: str
    submit_epoch: float  # seconds since 1970 (UTC, or the same clock for every row)
    duration_s: float
    gpus: int
    project: str
    walltime_s: float | None = None
    gpus_per_node: int | None = None
    qos: str = "normal"
    gpu_type: str | None = None
    depends_on: tuple[tuple[str, str], ...] = ()
    array_id: str | None = None
    array_limit: int | None = None
    user: str | None = None
    kind: str | None = None  # organisation kind of the project (the import from the DB)


@dataclass
class ImportSummary:
    """Jobs left out of an import, by reason (``never started``: 3, ...)."""

    left_out: Counter[str] = field(default_factory=Counter)
    dropped_dependencies: int = 0

    def lines(self) -> list[str]:
        out = [f"left out {n:,} job(s): {why}" for why, n in sorted(self.left_out.items())]
        if self.dropped_dependencies:
            out.append(f"dropped {self.dropped_dependencies:,} dependency(ies) on jobs that "
                       "are not in the trace")
        return out


def native_qos(qos: str | None) -> str:
    """Slurm/Rechenwerk QOS name -> the trace's normal|high|low (others: normal)."""
    name = (qos or "").strip().lower()
    return name if name in QOS_VALUES else "normal"


def history_trace(jobs: list[HistoryJob], source: str, summary: ImportSummary) -> Trace:
    ordered = sorted(jobs, key=lambda j: j.submit_epoch)  # stable: callers order by id
    t0 = ordered[0].submit_epoch if ordered else 0.0
    seen: set[str] = set()
    out: list[TraceJob] = []
    for j in ordered:
        deps = tuple(d for d in j.depends_on if d[1] in seen)
        summary.dropped_dependencies += len(j.depends_on) - len(deps)
        seen.add(j.job_id)
        out.append(TraceJob(
            job_id=j.job_id, submit_time=j.submit_epoch - t0, duration_s=j.duration_s,
            gpus=j.gpus, project=j.project, walltime_s=j.walltime_s,
            gpus_per_node=j.gpus_per_node, qos=j.qos, gpu_type=j.gpu_type, depends_on=deps,
            array_id=j.array_id, array_limit=j.array_limit, user=j.user, kind=j.kind))
    return Trace(jobs=tuple(out), skipped=(), source=source)
