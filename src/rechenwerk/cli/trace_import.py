"""``rechenwerk trace import``: the work behind the command (sources, time range,
anonymisation, writing), kept apart from the option parsing in ``trace.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput

# (description, total) -> update(done)
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _utc(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(message=f"{option}: expected an ISO-8601 time such as 2026-10-01 "
                           f"or 2026-10-01T12:00:00Z, got {text!r}", field=option) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def run_import(*, out: Path, from_db: bool, sacct: Sequence[Path], anonymise: bool,
               salt: str | None, since: str | None, until: str | None,
               sacct_format: str | None = None,
               progress: ProgressFactory | None = None) -> dict[str, Any]:
    """``progress(description, total)`` (when given) starts a progress bar and returns
    the function that moves it to the count done (rows of the job table, characters of
    a ``--parsable2`` file)."""
    from rechenwerk.simulation.traces.anonymise import Anonymiser, new_salt
    from rechenwerk.simulation.traces.history import HistoryJob, ImportSummary, history_trace
    from rechenwerk.simulation.traces.native import write_native_csv

    if from_db == bool(sacct):
        raise InvalidInput(message="give exactly one source: --from-db or --sacct FILE "
                           "(repeatable)",
                           field="source")
    if salt is not None and not anonymise:
        raise InvalidInput(message="--salt needs --anonymise", field="salt")
    if salt is not None and not salt.strip():
        raise InvalidInput(message="--salt must not be empty", field="salt")
    start, end = _utc(since, "--since"), _utc(until, "--until")
    if start is not None and end is not None and start >= end:
        raise InvalidInput(message=f"--since {since} is not before --until {until}",
                           field="--since")
    from rechenwerk.execution.slurm.sacct_trace import check_sacct_format_option

    chosen = check_sacct_format_option(sacct_format)
    if chosen is not None and not sacct:
        raise InvalidInput(message="--sacct-format needs --sacct FILE", field="--sacct-format")
    summary = ImportSummary()
    jobs: list[HistoryJob]
    data_format = None
    if sacct:
        jobs, formats = [], []
        seen: set[str] = set()
        for path in sacct:  # e.g. one file per week of a quarter: a job may be in two
            found, fmt = _read_sacct(path, summary, chosen,
                                     since=start.timestamp() if start else None,
                                     until=end.timestamp() if end else None,
                                     progress=progress)
            formats.append(fmt)
            for job in found:
                if job.job_id in seen:
                    summary.left_out["listed again in a later --sacct file"] += 1
                    continue
                seen.add(job.job_id)
                jobs.append(job)
        data_format = ",".join(dict.fromkeys(formats))
        source = f"sacct:{sacct[0]}" + (f" (+{len(sacct) - 1} more)" if len(sacct) > 1
                                          else "")
    else:
        from rechenwerk.cli.admin import db_session
        from rechenwerk.jobs.trace_import import count_jobs, history_from_db

        with db_session() as session:
            update = None
            if progress is not None:
                update = progress("reading the job table", count_jobs(session, start, end))
            jobs = history_from_db(session, summary, since=start, until=end, progress=update)
        source = "rechenwerk-db"
    if not jobs:
        raise InvalidInput(message="no job to import: none started and ended"
                           + (" in the --since/--until range" if since or until else ""),
                           hint="; ".join(summary.lines()) or None)
    trace = history_trace(jobs, source, summary)
    generated = None
    if anonymise:
        if salt is None:
            salt = generated = new_salt()
        trace = Anonymiser(salt).trace(trace)
    first = datetime.fromtimestamp(min(j.submit_epoch for j in jobs), UTC)
    comments = [f"Imported by `rechenwerk trace import` from {trace.source}",
                f"submit_time 0 = {'(withheld)' if anonymise else first.isoformat()}",
                *summary.lines()]
    try:
        path = write_native_csv(trace, out, comments=comments)
    except OSError as exc:
        raise InvalidInput(message=f"cannot write {out}: {exc.strerror}", field="out") from exc
    return {"path": str(path), "jobs": len(trace.jobs), "source": trace.source,
            "sacct_format": data_format,
            "users": len({j.user for j in trace.jobs if j.user is not None}),
            "left_out": dict(summary.left_out),
            "dropped_dependencies": summary.dropped_dependencies,
            "anonymised": anonymise, "generated_salt": generated, "notes": summary.lines()}


def _read_sacct(path: Path, summary: Any, chosen: str | None, *, since: float | None,
                until: float | None,
                progress: ProgressFactory | None) -> tuple[list[Any], str]:
    """sacct output of either kind: ``--json`` (by content, a JSON object; its data format
    from ``meta`` or ``chosen``) or ``--parsable2`` (a ``|``-separated header)."""
    from rechenwerk.execution.slurm.sacct_trace import looks_like_json, read_sacct_json
    from rechenwerk.simulation.traces.base import TraceFormatError
    from rechenwerk.simulation.traces.sacct import read_sacct_parsable

    is_json = looks_like_json(path) if chosen is None else chosen != "parsable2"
    if is_json:
        version = None if chosen in (None, "json") else chosen
        return read_sacct_json(path, summary, since=since, until=until, data_format=version)
    update = None
    if progress is not None:
        size = path.stat().st_size if path.is_file() else 0  # a missing file: NotFound next
        update = progress(f"reading {path.name}", max(1, size))
    try:
        return (read_sacct_parsable(path, summary, since=since, until=until,
                                    progress=update), "parsable2")
    except TraceFormatError as exc:
        if chosen is None and "not sacct --parsable2 output" in exc.message:
            raise TraceFormatError(
                message=f"{path} is neither sacct --json output (a JSON object) nor sacct "
                "--parsable2 output with a header (JobID|Submit|Start|End|AllocTRES...)",
                hint="produce it with one of the sacct command lines in docs/traces.md "
                "(\"Your centre's own history\")") from None
        raise
