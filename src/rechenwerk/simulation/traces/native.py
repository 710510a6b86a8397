"""Rechenwerk's native trace CSV: reader and writer (format in docs/traces.md).

Required columns: ``submit_time`` (seconds from the trace start, or ISO-8601 timestamps;
one form per file), ``duration_s``, ``gpus``. Optional: ``job_id``, ``project``,
``walltime_s``, ``gpus_per_node``, ``qos`` (normal|high|low), ``gpu_type``,
``depends_on`` (``after_ok:a:b,after_not_ok:c``: jobs on earlier lines), ``array`` (a
job array, as Slurm's ``--array``: the row stands for one task per index, ids
``<job_id>_<index>``, with the ``%N`` limit the simulator honours), ``user`` (who
submitted it: a centre's own history; the simulator does not use it), ``kind`` (the
organisation kind of the job's project, e.g. ``university``, ``sme``, ``startup``: one
kind per project, for the simulator's waits per kind; ``trace import --from-db`` writes
it). Unknown
columns are an error (a typo such as ``walltime`` must not be ignored silently). Blank
lines are skipped; lines starting with ``#`` are comments only before the header (after
it every line is a row, so no row can vanish silently).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.arrays import parse_array
from rechenwerk.simulation.traces._csv import (
    MAX_TRACE_SECONDS,
    RowError,
    check_columns,
    handle_row_error,
    new_reader,
    open_trace,
    parse_float,
    parse_pos_int,
    parse_utc,
    read_header,
    too_long,
)
from rechenwerk.simulation.traces.base import (
    DEPENDENCY_KINDS,
    QOS_VALUES,
    SkippedRow,
    Trace,
    TraceFormatError,
    TraceJob,
)

REQUIRED = ("submit_time", "duration_s", "gpus")
OPTIONAL = ("job_id", "project", "walltime_s", "gpus_per_node", "qos", "gpu_type",
            "depends_on", "array", "user", "kind")
# Tasks one row's ``array`` may expand to (the live service's limit is a setting).
MAX_ARRAY_TASKS = 100_000
COLUMNS = REQUIRED + OPTIONAL

_SECONDS = "seconds"
_ISO = "iso"


def _submit_form(value: str) -> str:
    try:
        float(value)
    except ValueError:
        return _ISO
    return _SECONDS


# Slurm's spellings are accepted too (afterok:12 as in --dependency).
_KIND_ALIASES = {"afterok": "after_ok", "afterany": "after_any", "afternotok": "after_not_ok",
                 **{k: k for k in DEPENDENCY_KINDS}}


def parse_depends_on(text: str, earlier: Mapping[str, int]) -> tuple[tuple[str, str], ...]:
    """``after_ok:a:b,after_not_ok:c`` -> (("after_ok", "a"), ("after_ok", "b"), ...); every
    id must be a job of an earlier line (``earlier``), so a trace has no cycles."""
    out: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        kind, _, rest = part.partition(":")
        kind = _KIND_ALIASES.get(kind.strip().lower(), "")
        ids = [i.strip() for i in rest.split(":")] if rest else []
        if not kind or not ids or not all(ids):
            raise RowError("depends_on", f"expected kind:id[:id...] with kind one of "
                           f"{', '.join(DEPENDENCY_KINDS)}, got {part!r}")
        for dep in ids:
            if dep not in earlier:
                raise RowError("depends_on", f"job {dep!r} is not on an earlier line; a job "
                               "can depend only on jobs listed before it")
            if (kind, dep) not in out:
                out.append((kind, dep))
    return tuple(out)


def format_depends_on(deps: Iterable[tuple[str, str]]) -> str:
    by_kind: dict[str, list[str]] = {}
    for kind, dep in deps:
        by_kind.setdefault(kind, []).append(dep)
    return ",".join(f"{k}:{':'.join(ids)}" for k, ids in by_kind.items())


def read_native(path: str | Path, *, skip_invalid: bool = False) -> Trace:
    spath = str(path)
    skipped: list[SkippedRow] = []
    # (submit, line, job_id, duration, gpus, project, walltime, gpus_per_node, qos, gpu_type,
    #  depends_on, array: (array id, limit) of a task, user, kind)
    parsed: list[
        tuple[float, int, str, float, int, str, float | None, int | None, str, str | None,
              tuple[tuple[str, str], ...], tuple[str, int | None] | None, str | None,
              str | None]
    ] = []
    kind_of: dict[str, tuple[str, int]] = {}  # project -> (kind, first line giving it)
    first_line_of: dict[str, int] = {}
    submit_of: dict[str, float] = {}
    form: str | None = None
    form_line = 0
    with open_trace(path) as fh:
        reader = new_reader(fh, spath)
        header, header_line = read_header(reader, spath)
        idx = check_columns(header, spath, header_line, REQUIRED, OPTIONAL, allow_unknown=False)
        ncols = len(header)
        i_sub, i_dur, i_gpus = idx["submit_time"], idx["duration_s"], idx["gpus"]
        i_id = idx.get("job_id")
        i_proj = idx.get("project")
        i_wall = idx.get("walltime_s")
        i_gpn = idx.get("gpus_per_node")
        i_qos = idx.get("qos")
        i_type = idx.get("gpu_type")
        i_deps = idx.get("depends_on")
        i_array = idx.get("array")
        i_user = idx.get("user")
        i_kind = idx.get("kind")
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            try:
                if len(row) != ncols:
                    raise RowError("", f"expected {ncols} fields as in the header, got {len(row)}")
                sub_txt = row[i_sub].strip()
                if not sub_txt:
                    raise RowError("submit_time", "missing value")
                this_form = _submit_form(sub_txt)
                if this_form == _ISO:
                    submit = parse_utc(sub_txt, "submit_time")
                else:
                    submit = float(sub_txt)
                    if not (math.isfinite(submit) and submit >= 0):
                        raise RowError(
                            "submit_time",
                            f"expected non-negative seconds from the trace start, got {sub_txt!r}",
                        )
                    if submit > MAX_TRACE_SECONDS:
                        raise RowError("submit_time", too_long(sub_txt))
                if form is not None and this_form != form:
                    raise RowError(
                        "submit_time",
                        f"mixed time forms: {sub_txt!r} is "
                        f"{'ISO-8601' if this_form == _ISO else 'seconds'} but line {form_line} "
                        f"uses {'ISO-8601' if form == _ISO else 'seconds'}; use one form per file",
                    )
                duration = parse_float(row[i_dur].strip(), "duration_s")
                gpus = parse_pos_int(row[i_gpus].strip(), "gpus")
                job_id = row[i_id].strip() if i_id is not None else ""
                if not job_id:
                    job_id = f"L{line}"
                project = (row[i_proj].strip() if i_proj is not None else "") or "default"
                walltime: float | None = None
                if i_wall is not None and row[i_wall].strip():
                    walltime = parse_float(row[i_wall].strip(), "walltime_s", allow_zero=False)
                gpn: int | None = None
                if i_gpn is not None and row[i_gpn].strip():
                    gpn = parse_pos_int(row[i_gpn].strip(), "gpus_per_node")
                    if gpus > gpn and gpus % gpn:
                        raise RowError(
                            "gpus_per_node",
                            f"{gpus} GPUs do not fill whole nodes of {gpn} GPUs; a multi-node job "
                            "needs gpus to be a multiple of gpus_per_node",
                        )
                    if gpn > gpus:
                        raise RowError(
                            "gpus_per_node",
                            f"{gpn} GPUs per node is more than the job's {gpus} GPUs",
                        )
                qos = "normal"
                if i_qos is not None and row[i_qos].strip():
                    qos = row[i_qos].strip()
                    if qos not in QOS_VALUES:
                        raise RowError(
                            "qos", f"expected one of {', '.join(QOS_VALUES)}, got {qos!r}"
                        )
                gpu_type = (row[i_type].strip() if i_type is not None else "") or None
                user = (row[i_user].strip() if i_user is not None else "") or None
                kind = (row[i_kind].strip() if i_kind is not None else "") or None
                if kind is not None:
                    first = kind_of.get(project)
                    if first is not None and first[0] != kind:
                        raise RowError("kind", f"project {project!r} has kind {first[0]!r} "
                                       f"on line {first[1]}; a project has one kind")
                tasks: list[tuple[str, tuple[str, int | None] | None]] = [(job_id, None)]
                if i_array is not None and row[i_array].strip():
                    try:
                        arr = parse_array(row[i_array].strip(), max_tasks=MAX_ARRAY_TASKS)
                    except ValueError as exc:
                        raise RowError("array", str(exc)) from None
                    tasks = [(f"{job_id}_{i}", (job_id, arr.limit)) for i in arr.indices]
                for task_id, _ in tasks:
                    prev = first_line_of.get(task_id)
                    if prev is not None:
                        raise RowError("job_id",
                                       f"duplicate job_id {task_id!r} (first on line {prev})")
                deps_txt = row[i_deps].strip() if i_deps is not None else ""
                deps = parse_depends_on(deps_txt, first_line_of) if deps_txt else ()
                for _kind, dep in deps:
                    if submit_of[dep] > submit:
                        raise RowError("depends_on", f"job {dep!r} is submitted after this "
                                       "job; a job can depend only on jobs submitted before it")
            except RowError as err:
                handle_row_error(err, spath, line, skip_invalid, skipped)
                continue
            if form is None:
                form, form_line = this_form, line
            if kind is not None:
                kind_of.setdefault(project, (kind, line))
            for task_id, array in tasks:
                first_line_of[task_id] = line
                submit_of[task_id] = submit
                parsed.append((submit, line, task_id, duration, gpus, project, walltime, gpn,
                               qos, gpu_type, deps, array, user, kind))
    parsed.sort(key=lambda p: p[0])
    t0 = parsed[0][0] if (parsed and form == _ISO) else 0.0
    if parsed and parsed[-1][0] - t0 > MAX_TRACE_SECONDS:
        raise TraceFormatError.at(
            spath, parsed[-1][1], "submit_time",
            f"the trace spans {parsed[-1][0] - t0:.0f} s from its first submission (line "
            f"{parsed[0][1]}), more than the limit of {MAX_TRACE_SECONDS:.0e} s (~31 years)",
            hint="check the timestamps' years",
        )
    jobs = tuple(
        TraceJob(
            job_id=jid,
            submit_time=sub - t0,
            duration_s=dur,
            gpus=g,
            project=proj,
            walltime_s=wall,
            gpus_per_node=gpn_,
            qos=q,
            gpu_type=gt,
            depends_on=deps_,
            array_id=arr[0] if arr else None,
            array_limit=arr[1] if arr else None,
            user=usr,
            # rows without a kind take their project's kind from the other rows
            kind=kind_ or (kind_of[proj][0] if proj in kind_of else None),
        )
        for sub, _line, jid, dur, g, proj, wall, gpn_, q, gt, deps_, arr, usr, kind_ in parsed
    )
    return Trace(jobs=jobs, skipped=tuple(skipped), source=f"native:{spath}")


def _fmt(x: float) -> str:
    """Shortest text that reads back to the same float (integers without '.0')."""
    return str(int(x)) if x.is_integer() else repr(x)


def write_native_csv(trace: Trace, path: str | Path, *, comments: Iterable[str] = ()) -> Path:
    """Write ``trace`` in the native format (seconds form); ``read_native`` reads it back
    to an equal job tuple. ``comments`` become leading ``# ...`` lines."""
    ids = set()
    with_deps = any(j.depends_on for j in trace.jobs)  # the column only when used
    for job in trace.jobs:
        if job.job_id in ids:
            raise InvalidInput(
                message=f"duplicate job_id {job.job_id!r} in trace {trace.source}",
                field="job_id",
                hint="job ids must be unique to be written and read back",
            )
        ids.add(job.job_id)
    arrays = any(j.array_id is not None for j in trace.jobs)  # the column only when used
    users = any(j.user is not None for j in trace.jobs)  # the column only when used
    kinds = any(j.kind for j in trace.jobs)  # the column only when used
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        for c in comments:
            for part in str(c).splitlines():
                fh.write(f"# {part}\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "job_id",
                "submit_time",
                "duration_s",
                "gpus",
                "project",
                "walltime_s",
                "gpus_per_node",
                "qos",
                "gpu_type",
                *(["depends_on"] if with_deps else []),
                *(["array"] if arrays else []),
                *(["user"] if users else []),
                *(["kind"] if kinds else []),
            ]
        )
        for j in trace.jobs:
            array = ""
            row_id = j.job_id
            if j.array_id is not None:  # one row per task: job_id = the array, array = index
                index = j.job_id.removeprefix(f"{j.array_id}_")
                if not index.isdigit():
                    raise InvalidInput(
                        message=f"array task {j.job_id!r} is not named <array>_<index>",
                        field="job_id", hint="name array tasks as the native reader does")
                row_id = j.array_id
                array = index + (f"%{j.array_limit}" if j.array_limit else "")
            w.writerow(
                [
                    row_id,
                    _fmt(j.submit_time),
                    _fmt(j.duration_s),
                    j.gpus,
                    j.project,
                    "" if j.walltime_s is None else _fmt(j.walltime_s),
                    "" if j.gpus_per_node is None else j.gpus_per_node,
                    j.qos,
                    j.gpu_type or "",
                    *([format_depends_on(j.depends_on)] if with_deps else []),
                    *([array] if arrays else []),
                    *([j.user or ""] if users else []),
                    *([j.kind or ""] if kinds else []),
                ]
            )
    return out
