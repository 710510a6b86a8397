"""Reader for the Microsoft Philly job log as published with the Pollux/Sia artifacts.

Columns ``timestamp,duration,num_gpus,gpu_time,cluster`` (see docs/traces.md):

- ``submit_time`` = seconds since the earliest ``timestamp`` of the file (UTC);
- ``duration_s`` = ``duration`` (rows with 0 s are kept: real jobs that ended at once);
- ``gpus`` = ``num_gpus``; ``project`` = ``cluster`` (the virtual cluster / tenant);
- ``job_id`` = ``L<line>``, the line of the row in the file, so every job can be traced
  back to its source row; ``walltime_s``/``gpus_per_node``/``gpu_type`` are unknown (None);
- ``gpu_time`` is not needed (it is duration x num_gpus) and extra columns are ignored.

Jobs are sorted by submit time, stable by line.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.simulation.traces._csv import (
    MAX_TRACE_GPUS,
    MAX_TRACE_SECONDS,
    RowError,
    check_columns,
    handle_row_error,
    new_reader,
    open_trace,
    read_header,
    too_long,
    too_many_gpus,
)
from rechenwerk.simulation.traces.base import SkippedRow, Trace, TraceFormatError, TraceJob

REQUIRED = ("timestamp", "duration", "num_gpus", "cluster")
_EPOCH = datetime(1970, 1, 1)


def read_philly(path: str | Path, *, skip_invalid: bool = False) -> Trace:
    spath = str(path)
    skipped: list[SkippedRow] = []
    # (epoch seconds, line, duration, gpus, cluster)
    rows: list[tuple[float, int, float, int, str]] = []
    append = rows.append
    fromiso = datetime.fromisoformat
    with open_trace(path) as fh:
        reader = new_reader(fh, spath)
        header, header_line = read_header(reader, spath)
        idx = check_columns(header, spath, header_line, REQUIRED, (), allow_unknown=True)
        i_ts, i_dur, i_gpu, i_cl = (idx[c] for c in REQUIRED)
        width = max(i_ts, i_dur, i_gpu, i_cl) + 1
        for row in reader:
            if len(row) < width:
                if not row or not any(c.strip() for c in row):
                    continue  # blank line
                handle_row_error(
                    RowError("", f"expected {len(header)} fields, got {len(row)}"),
                    spath,
                    reader.line_num,
                    skip_invalid,
                    skipped,
                )
                continue
            # fast path: well-formed rows parse without any checks failing
            try:
                dt = fromiso(row[i_ts])
                dur = float(row[i_dur])
                gpus = int(row[i_gpu])
                cluster = row[i_cl]
                if dt.tzinfo is not None:
                    dt = dt.astimezone(UTC).replace(tzinfo=None)
                ts = (dt - _EPOCH).total_seconds()
                if 0 <= dur <= MAX_TRACE_SECONDS and 0 < gpus <= MAX_TRACE_GPUS and cluster:
                    append((ts, reader.line_num, dur, gpus, cluster))
                    continue
            except ValueError:
                pass
            try:
                _diagnose(row, i_ts, i_dur, i_gpu, i_cl)
            except RowError as err:
                handle_row_error(err, spath, reader.line_num, skip_invalid, skipped)

    rows.sort(key=lambda r: r[0])  # stable: equal timestamps keep line order
    t0 = rows[0][0] if rows else 0.0
    if rows and rows[-1][0] - t0 > MAX_TRACE_SECONDS:
        raise TraceFormatError.at(
            spath, rows[-1][1], "timestamp",
            f"the trace spans {rows[-1][0] - t0:.0f} s from its first job (line {rows[0][1]}), "
            f"more than the limit of {MAX_TRACE_SECONDS:.0e} s (~31 years)",
            hint="check the timestamps' years",
        )
    jobs = tuple(
        TraceJob(job_id=f"L{line}", submit_time=ts - t0, duration_s=dur, gpus=g, project=cl)
        for ts, line, dur, g, cl in rows
    )
    return Trace(jobs=jobs, skipped=tuple(skipped), source=f"philly:{spath}")


def _diagnose(row: list[str], i_ts: int, i_dur: int, i_gpu: int, i_cl: int) -> None:
    """Raise the RowError that explains why a row failed the fast path."""
    try:
        datetime.fromisoformat(row[i_ts])
    except ValueError:
        raise RowError(
            "timestamp", f"expected a timestamp like 2017-10-09 07:01:55, got {row[i_ts]!r}"
        ) from None
    try:
        dur = float(row[i_dur])
    except ValueError:
        dur = math.nan
    if not (math.isfinite(dur) and dur >= 0):
        raise RowError("duration", f"expected a non-negative number of seconds, got {row[i_dur]!r}")
    if dur > MAX_TRACE_SECONDS:
        raise RowError("duration", too_long(row[i_dur]))
    try:
        gpus = int(row[i_gpu])
    except ValueError:
        gpus = 0
    if gpus <= 0:
        raise RowError("num_gpus", f"expected a positive integer, got {row[i_gpu]!r}")
    if gpus > MAX_TRACE_GPUS:
        raise RowError("num_gpus", too_many_gpus(row[i_gpu]))
    if not row[i_cl]:
        raise RowError("cluster", "expected a virtual cluster name, got an empty value")
    raise RowError("", "malformed row")  # pragma: no cover - fast path accepted it
