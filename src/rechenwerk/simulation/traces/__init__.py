"""Workload traces for the simulator: readers (native CSV, Philly), writer, generator.

``read_trace(path, fmt)`` is the one entry point used by the CLI and the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.traces.base import (
    QOS_VALUES,
    SkippedRow,
    Trace,
    TraceFormatError,
    TraceJob,
)

FORMATS: tuple[str, ...] = ("native", "philly")


def read_trace(path: str | Path, fmt: str = "native", *, skip_invalid: bool = False) -> Trace:
    """Read a trace file; jobs sorted by submit time (stable by line).

    A malformed row raises :class:`TraceFormatError` naming file, line and column; with
    ``skip_invalid=True`` such rows are skipped and listed in ``Trace.skipped``.
    """
    if fmt == "native":
        from rechenwerk.simulation.traces.native import read_native

        return read_native(path, skip_invalid=skip_invalid)
    if fmt == "philly":
        from rechenwerk.simulation.traces.philly import read_philly

        return read_philly(path, skip_invalid=skip_invalid)
    raise InvalidInput(
        message=f"unknown trace format {fmt!r}",
        field="format",
        hint=f"use one of: {', '.join(FORMATS)}",
    )


def write_native_csv(trace: Trace, path: str | Path) -> Path:
    from rechenwerk.simulation.traces.native import write_native_csv as _write

    return _write(trace, path)


__all__ = [
    "FORMATS",
    "QOS_VALUES",
    "SkippedRow",
    "Trace",
    "TraceFormatError",
    "TraceJob",
    "read_trace",
    "write_native_csv",
]
