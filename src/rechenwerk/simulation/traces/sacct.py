"""Slurm accounting (``sacct --parsable2``) as a trace (docs/traces.md "Your centre's own
history").

Reads the ``|``-separated output of the documented ``sacct`` command line, header
included. Required columns: ``JobID``, ``Submit``, ``Start``, ``End``, ``AllocTRES``;
used when present: ``Account``, ``User``, ``ElapsedRaw``, ``TimelimitRaw``, ``QOS``,
``State``; other columns are ignored (sacct formats differ between sites). Job steps (``123.batch``)
are ignored; jobs that never started, still run, or hold no GPU are left out and counted.
A malformed line stops the reader naming file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.simulation.traces._csv import MAX_TRACE_GPUS, MAX_TRACE_SECONDS, open_trace
from rechenwerk.simulation.traces.base import TraceFormatError
from rechenwerk.simulation.traces.history import HistoryJob, ImportSummary, native_qos

REQUIRED = ("JobID", "Submit", "Start", "End", "AllocTRES")
_NOT_A_TIME = {"unknown", "none", ""}
_ARRAY_TASK = re.compile(r"^(\d+)_(\d+)$")
_JOB_ID = re.compile(r"^\d+(\+\d+)?(_\d+)?$")  # 123, 123_4, 123+0 (heterogeneous)
_PENDING_ARRAY = re.compile(r"^\d+_\[.*\]$")  # 123_[5-9%2]: tasks not yet started


class _LineError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column, self.message = column, message


def _time(text: str, column: str) -> float | None:
    """sacct's ``2026-12-02T07:31:04`` (no zone: run sacct with TZ=UTC) -> epoch seconds;
    ``Unknown``/``None`` -> None."""
    if text.strip().lower() in _NOT_A_TIME:
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _LineError(column, f"expected a time such as 2026-12-02T07:31:04, got "
                         f"{text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _gpus(tres: str) -> tuple[int, str | None, int | None]:
    """``billing=1,cpu=1,gres/gpu:a100=2,gres/gpu=2,mem=512M,node=1`` -> (2, "a100", 1)."""
    gpus, gpu_type, nodes = 0, None, None
    for part in (p.strip() for p in tres.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep:
            raise _LineError("AllocTRES", f"expected name=value items, got {part!r}")
        if key == "gres/gpu" or key.startswith("gres/gpu:") or key == "node":
            if not value.isdigit() or int(value) > MAX_TRACE_GPUS:
                raise _LineError("AllocTRES", f"expected a count in {part!r}")
            if key == "gres/gpu":
                gpus = int(value)
            elif key == "node":
                nodes = int(value)
            elif gpu_type is None:
                gpu_type = key.removeprefix("gres/gpu:")
    return gpus, gpu_type, nodes


def _seconds(text: str, column: str, *, scale: int = 1) -> float | None:
    value = text.strip()
    if value.lower() in {"", "unlimited", "partition_limit", "none"}:
        return None
    if not value.isdigit():
        raise _LineError(column, f"expected a whole number, got {text!r}")
    seconds = float(int(value) * scale)
    if seconds > MAX_TRACE_SECONDS:
        raise _LineError(column, f"{text!r} is beyond {MAX_TRACE_SECONDS:.0e} s")
    return seconds


def read_sacct_parsable(path: str | Path, summary: ImportSummary, *,
                        since: float | None = None,
                        until: float | None = None,
                        progress: Callable[[int], None] | None = None) -> list[HistoryJob]:
    """The started and ended GPU jobs of a ``sacct --parsable2`` file, submitted in
    ``[since, until)`` (epoch seconds) when given, in file order; ``progress`` is told
    the characters read so far every 20,000 lines and at the end."""
    spath = str(path)
    read = 0
    jobs: list[HistoryJob] = []
    first_line: dict[str, int] = {}
    with open_trace(path) as fh:
        header: list[str] | None = None
        for line_no, raw in enumerate(fh, start=1):
            read += len(raw)
            if progress is not None and line_no % 20_000 == 0:
                progress(read)
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("|")
            if header is None:
                header = [f.strip() for f in fields]
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise TraceFormatError(
                        message=f"{spath}:{line_no}: not sacct --parsable2 output with a "
                        f"header: missing column(s) {', '.join(missing)}",
                        hint="produce it with the sacct command line in docs/traces.md "
                        "(-P, and without -n so the header is printed)")
                continue
            if len(fields) != len(header):
                raise TraceFormatError.at(
                    spath, line_no, "", f"expected {len(header)} '|'-separated fields as in "
                    f"the header, got {len(fields)}", hint="use --parsable2 (-P), not -p")
            row = dict(zip(header, fields, strict=True))
            try:
                job = _job(row, summary, since, until)
            except _LineError as err:
                raise TraceFormatError.at(spath, line_no, err.column, err.message,
                                          hint="the file must be unmodified sacct -P output"
                                          ) from None
            if job is None:
                continue
            if job.job_id in first_line:
                raise TraceFormatError.at(
                    spath, line_no, "JobID", f"job {job.job_id} again (first on line "
                    f"{first_line[job.job_id]})", hint="run sacct with -X and without -D")
            first_line[job.job_id] = line_no
            jobs.append(job)
    if header is None:
        raise TraceFormatError(message=f"{spath}: the file is empty (no sacct header)",
                               hint="run the sacct command line in docs/traces.md")
    if progress is not None:
        progress(read)
    return jobs


def _job(row: dict[str, str], summary: ImportSummary, since: float | None,
         until: float | None) -> HistoryJob | None:
    job_id = row["JobID"].strip()
    if "." in job_id:  # a step (123.batch, 123.0): the allocation's own line counts
        return None
    if _PENDING_ARRAY.match(job_id):
        summary.left_out["never started"] += 1
        return None
    if not _JOB_ID.match(job_id):
        raise _LineError("JobID", f"expected a job id such as 123 or 123_4, got {job_id!r}")
    submit = _time(row["Submit"], "Submit")
    if submit is None:
        raise _LineError("Submit", "a job without a submit time")
    start = _time(row["Start"], "Start")
    end = _time(row["End"], "End")
    if (since is not None and submit < since) or (until is not None and submit >= until):
        summary.left_out["submitted outside --since/--until"] += 1
        return None
    if start is None:
        summary.left_out["never started"] += 1
        return None
    if end is None:
        summary.left_out["still running"] += 1
        return None
    gpus, gpu_type, nodes = _gpus(row["AllocTRES"])
    if gpus == 0:
        summary.left_out["no GPUs"] += 1
        return None
    elapsed = _seconds(row.get("ElapsedRaw", ""), "ElapsedRaw")
    duration = elapsed if elapsed is not None else max(0.0, end - start)
    walltime = _seconds(row.get("TimelimitRaw", ""), "TimelimitRaw", scale=60)
    gpn = gpus // nodes if nodes and gpus % nodes == 0 else None
    task = _ARRAY_TASK.match(job_id)
    return HistoryJob(
        job_id=job_id, submit_epoch=submit, duration_s=duration, gpus=gpus,
        project=row.get("Account", "").strip() or "default", walltime_s=walltime or None,
        gpus_per_node=gpn, qos=native_qos(row.get("QOS")), gpu_type=gpu_type,
        array_id=task.group(1) if task else None, user=row.get("User", "").strip() or None)
