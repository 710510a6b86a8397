"""``rechenwerk trace import``: the work behind the command (sources, time range,
anonymisation, writing), kept apart from the option parsing in ``trace.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput


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


def run_import(*, out: Path, from_db: bool, sacct: Path | None, anonymise: bool,
               salt: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    from rechenwerk.simulation.traces.anonymise import Anonymiser, new_salt
    from rechenwerk.simulation.traces.history import HistoryJob, ImportSummary, history_trace
    from rechenwerk.simulation.traces.native import write_native_csv

    if from_db == (sacct is not None):
        raise InvalidInput(message="give exactly one source: --from-db or --sacct FILE",
                           field="source")
    if salt is not None and not anonymise:
        raise InvalidInput(message="--salt needs --anonymise", field="salt")
    if salt is not None and not salt.strip():
        raise InvalidInput(message="--salt must not be empty", field="salt")
    start, end = _utc(since, "--since"), _utc(until, "--until")
    if start is not None and end is not None and start >= end:
        raise InvalidInput(message=f"--since {since} is not before --until {until}",
                           field="--since")
    summary = ImportSummary()
    jobs: list[HistoryJob]
    if sacct is not None:
        from rechenwerk.simulation.traces.sacct import read_sacct_parsable

        jobs = read_sacct_parsable(sacct, summary,
                                   since=start.timestamp() if start else None,
                                   until=end.timestamp() if end else None)
        source = f"sacct:{sacct}"
    else:
        from rechenwerk.cli.admin import db_session
        from rechenwerk.jobs.trace_import import history_from_db

        with db_session() as session:
            jobs = history_from_db(session, summary, since=start, until=end)
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
            "left_out": dict(summary.left_out),
            "dropped_dependencies": summary.dropped_dependencies,
            "anonymised": anonymise, "generated_salt": generated, "notes": summary.lines()}
