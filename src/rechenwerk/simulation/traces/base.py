"""Trace data types shared by every trace reader, the generator and the simulator.

A trace is an ordered tuple of :class:`TraceJob` (sorted by ``submit_time``, stable by
input order), the rows a reader skipped (only with ``skip_invalid=True``; never silently)
and a human description of where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from rechenwerk.errors import InvalidInput

QOS_VALUES: tuple[str, ...] = ("normal", "high", "low")
DEPENDENCY_KINDS: tuple[str, ...] = ("after_ok", "after_any", "after_not_ok")


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a workload trace; times are float seconds from the trace start."""

    job_id: str
    submit_time: float  # seconds from the trace start
    duration_s: float  # real run time
    gpus: int
    project: str = "default"
    walltime_s: float | None = None  # user's estimate; None -> replay option decides
    gpus_per_node: int | None = None
    qos: str = "normal"
    gpu_type: str | None = None
    # (kind, job id) of jobs this one waits for: after_ok / after_any / after_not_ok, as
    # the live service's ``depends_on`` (docs/jobs.md "Dependencies").
    depends_on: tuple[tuple[str, str], ...] = ()
    # A task of a job array (``job_id`` is ``<array_id>_<index>``) and the array's limit
    # of tasks running at once (None: none); the simulator honours it.
    array_id: str | None = None
    array_limit: int | None = None
    # Who submitted it (a centre's own history; hashed by ``--anonymise``). The simulator
    # does not use it: fair share is per project.
    user: str | None = None
    # The organisation kind of the job's project (university, sme, startup, ...; the
    # live service's organisation kinds), for the simulator's waits per kind; None: unknown.
    kind: str | None = None

    @property
    def gpu_seconds(self) -> float:
        return self.duration_s * self.gpus


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row a reader rejected under ``skip_invalid=True`` (reported, never silent)."""

    path: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        col = f" column '{self.column}':" if self.column else ""
        return f"{self.path}:{self.line}:{col} {self.message}"


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed workload: jobs in submit order, skipped rows, and the source."""

    jobs: tuple[TraceJob, ...]
    skipped: tuple[SkippedRow, ...]
    source: str

    def __len__(self) -> int:
        return len(self.jobs)


class TraceFormatError(InvalidInput):
    """A trace file is malformed; the message names file, line and column."""

    code = "trace_format"
    title = "Invalid trace file"

    @classmethod
    def at(
        cls,
        path: str,
        line: int,
        column: str,
        message: str,
        *,
        hint: str | None = None,
    ) -> TraceFormatError:
        """``trace.csv:17: column 'gpus': expected a positive integer, got 'x'``."""
        col = f" column '{column}':" if column else ""
        return cls(
            message=f"{path}:{line}:{col} {message}",
            hint=hint
            or (
                "fix the row, or pass --skip-invalid to skip malformed rows "
                "(they are counted and reported)"
            ),
        )
