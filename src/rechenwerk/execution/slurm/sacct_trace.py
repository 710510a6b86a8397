"""``sacct --json`` output as a centre's own history (``rechenwerk trace import --sacct``,
docs/traces.md "Your centre's own history").

The records are parsed by the same data format modules the Slurm backend uses
(``v0_0_38`` ... ``v0_0_42``: ``parse_accounted_jobs``), so every Slurm release the backend
supports can be imported. The format is read from the output's ``meta`` (``data_parser``
from Slurm 23.02 on, ``openapi/dbv0.0.38`` in 22.05, else the release) or given by the
operator (``--sacct-format v0.0.40``). Jobs that never started, still run, or hold no GPU
are left out and counted; a requeued job (``sacct -D``) counts once, submitted when its
first run was, running as long as its last run did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from rechenwerk.errors import InvalidInput, RechenwerkError
from rechenwerk.execution.slurm import versions
from rechenwerk.execution.slurm.types import SlurmJob
from rechenwerk.simulation.traces._csv import open_trace
from rechenwerk.simulation.traces.base import TraceFormatError
from rechenwerk.simulation.traces.history import HistoryJob, ImportSummary, native_qos

_FORMAT_IN = re.compile(r"v\d+\.\d+\.\d+")
_HINT = ("produce it with `TZ=UTC sacct -a -X --json -S ... -E ...` (docs/traces.md), "
         "unmodified; or name its data format with --sacct-format v0.0.38 ... v0.0.42")


def looks_like_json(path: str | Path) -> bool:
    """Whether the file's first non-blank character opens a JSON object."""
    with open_trace(path) as fh:
        while chunk := fh.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith("{")
    return False


def detect_format(doc: Mapping[str, Any]) -> ModuleType | None:
    """The data format module named by a ``sacct --json`` document's ``meta``, or None."""
    meta = doc.get("meta")
    if not isinstance(meta, Mapping):
        return None
    plugin = meta.get("plugin") or meta.get("plugins") or {}
    if isinstance(plugin, Mapping):
        # 23.02+: "data_parser": "data_parser/v0.0.42"; 22.05: "type": "openapi/dbv0.0.38"
        for key in ("data_parser", "type"):
            m = _FORMAT_IN.search(str(plugin.get(key) or ""))
            if m and m.group(0) in versions.FORMATS:
                return versions.FORMATS[m.group(0)]
    slurm = meta.get("Slurm") or meta.get("slurm") or {}
    release = slurm.get("release") if isinstance(slurm, Mapping) else None
    if release:
        try:
            return versions.format_for_release(versions.parse_release(str(release)))
        except RechenwerkError:
            return None
    return None


def read_sacct_json(path: str | Path, summary: ImportSummary, *,
                    since: float | None = None, until: float | None = None,
                    data_format: str | None = None) -> tuple[list[HistoryJob], str]:
    """The started and ended GPU jobs of a ``sacct --json`` file submitted in
    ``[since, until)`` (epoch seconds), in file order; and the data format read."""
    spath = str(path)
    with open_trace(path) as fh:
        text = fh.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(message=f"{spath}:{exc.lineno}: not valid JSON: {exc.msg} "
                               f"(column {exc.colno})", hint=_HINT) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("jobs"), list):
        raise TraceFormatError(message=f"{spath}: not sacct --json output: no \"jobs\" list "
                               "at the top", hint=_HINT)
    if data_format is not None:
        fmt = versions.format_by_name(data_format, field="--sacct-format")
    else:
        found = detect_format(doc)
        if found is None:
            raise TraceFormatError(
                message=f"{spath}: cannot tell which Slurm data format this sacct --json "
                "output is in (its \"meta\" names none Rechenwerk knows)",
                hint=f"give it: --sacct-format one of {', '.join(versions.FORMATS)} "
                "(Slurm 22.05: v0.0.38, 23.02: v0.0.39, 23.11: v0.0.40, 24.05: v0.0.41, "
                "24.11: v0.0.42); on Slurm 25.05 and later export it in one of those: "
                "sacct --json=v0.0.42 ...")
        fmt = found
    _check_errors(doc, spath)
    try:
        records: list[SlurmJob] = fmt.parse_accounted_jobs(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TraceFormatError(
            message=f"{spath}: a job record does not have the shape of data format "
            f"{fmt.VERSION} ({type(exc).__name__}: {exc})", hint=_HINT) from None
    jobs: list[HistoryJob] = []
    for rec in records:
        job = _history_job(rec, summary, since, until, spath)
        if job is not None:
            jobs.append(job)
    return jobs, str(fmt.VERSION)


def _check_errors(doc: Mapping[str, Any], spath: str) -> None:
    for e in doc.get("errors") or []:
        if not isinstance(e, Mapping):
            continue
        if e.get("error_number") == 9003:  # "Nothing found": an empty answer
            continue
        desc = e.get("description") or e.get("error") or "unknown error"
        raise TraceFormatError(message=f"{spath}: sacct reported an error instead of jobs: "
                               f"{desc}", hint="run sacct again; see its \"errors\" list")


def _history_job(rec: SlurmJob, summary: ImportSummary, since: float | None,
                 until: float | None, spath: str) -> HistoryJob | None:
    first = rec.earlier_runs[0] if rec.earlier_runs else rec
    submitted = first.submit_time or rec.submit_time
    if submitted is None:
        raise TraceFormatError(message=f"{spath}: job {rec.job_id} has no submission time",
                               hint=_HINT)
    submit = submitted.timestamp()
    if (since is not None and submit < since) or (until is not None and submit >= until):
        summary.left_out["submitted outside --since/--until"] += 1
        return None
    if rec.start_time is None:
        summary.left_out["never started"] += 1
        return None
    if rec.end_time is None:
        summary.left_out["still running"] += 1
        return None
    if not rec.gpus:
        summary.left_out["no GPUs"] += 1
        return None
    nodes = len(rec.nodes)
    gpn = rec.gpus // nodes if nodes and rec.gpus % nodes == 0 else None
    array_id = rec.array_job_id or None
    job_id = rec.job_id
    if array_id is not None and rec.array_task_id is not None:
        job_id = f"{array_id}_{rec.array_task_id}"
    elif array_id is not None:
        array_id = None  # no task index: a job of its own
    return HistoryJob(
        job_id=job_id, submit_epoch=submit,
        duration_s=max(0.0, (rec.end_time - rec.start_time).total_seconds()),
        gpus=rec.gpus, project=rec.account.strip() or "default",
        walltime_s=None if rec.time_limit_min is None else 60.0 * rec.time_limit_min,
        gpus_per_node=gpn, qos=native_qos(rec.qos), gpu_type=rec.gpu_type,
        array_id=array_id, user=rec.user.strip() or None)


def check_sacct_format_option(value: str | None) -> str | None:
    """``--sacct-format``: auto (None), parsable2, json, or a data format name."""
    if value is None or value == "auto":
        return None
    if value in ("parsable2", "json") or value in versions.FORMATS:
        return value
    raise InvalidInput(message=f"--sacct-format: unknown format {value!r}",
                       field="--sacct-format",
                       hint=f"one of auto, parsable2, json, {', '.join(versions.FORMATS)}")
