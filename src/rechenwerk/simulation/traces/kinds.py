"""Organisation kinds of a trace's projects from a file (``rechenwerk simulate
--project-kinds FILE``), for traces that do not carry a ``kind`` column (sacct, Philly,
generated ones). The file is CSV with the header ``project,kind`` and one row per
project; a project named twice with different kinds is an error. The file's kinds win
over a trace's ``kind`` column; projects it does not name keep theirs (docs/traces.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from rechenwerk.simulation.traces._csv import (
    check_columns,
    new_reader,
    open_trace,
    read_header,
)
from rechenwerk.simulation.traces.base import TraceFormatError, TraceJob


def read_project_kinds(path: str | Path) -> dict[str, str]:
    """project -> kind from a ``project,kind`` CSV; errors name the file and line."""
    spath = str(path)
    out: dict[str, tuple[str, int]] = {}
    with open_trace(path) as fh:
        reader = new_reader(fh, spath)
        header, header_line = read_header(reader, spath)
        idx = check_columns(header, spath, header_line, ("project", "kind"), (),
                            allow_unknown=False)
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise TraceFormatError.at(spath, line, "", f"expected {len(header)} fields "
                                          f"as in the header, got {len(row)}")
            project, kind = row[idx["project"]].strip(), row[idx["kind"]].strip()
            for column, value in (("project", project), ("kind", kind)):
                if not value:
                    raise TraceFormatError.at(spath, line, column, "missing value")
            first = out.get(project)
            if first is not None and first[0] != kind:
                raise TraceFormatError.at(
                    spath, line, "kind", f"project {project!r} has kind {first[0]!r} on "
                    f"line {first[1]}; a project has one kind",
                    hint="give each project once")
            out.setdefault(project, (kind, line))
    return {p: k for p, (k, _) in out.items()}


def with_kinds(jobs: Iterable[TraceJob], kinds: Mapping[str, str]) -> tuple[TraceJob, ...]:
    """The jobs with the kinds of ``kinds`` for their projects (others unchanged)."""
    return tuple(replace(j, kind=kinds[j.project]) if j.project in kinds else j
                 for j in jobs)
