"""Shared CSV plumbing of the trace readers: opening, header checks, row errors."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.simulation.traces.base import SkippedRow, TraceFormatError

# Bounds on what a trace row may say (docs/traces.md, docs/security.md): beyond them the
# numbers are nonsense for a replay (1e308 s overflows the engine and the metrics).
MAX_TRACE_SECONDS = 1e9  # ~31.7 years: run times, walltimes, submit times, time spans
MAX_TRACE_GPUS = 1_000_000  # per job (gpus, gpus_per_node)


class CsvReader(Protocol):
    """What the readers use of ``csv.reader``: row iteration and the physical line."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


class RowError(Exception):
    """A problem with one row; becomes a TraceFormatError or a SkippedRow."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


@contextmanager
def open_trace(path: str | Path) -> Iterator[IO[str]]:
    p = Path(path)
    if not p.exists():
        raise NotFound(
            message=f"trace file not found: {path}",
            hint="check the path (relative paths are resolved from the current directory)",
        )
    if p.is_dir():
        raise InvalidInput(message=f"trace path is a directory, not a file: {path}")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            yield fh
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            message=f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})",
            hint="trace files are UTF-8 CSV",
        ) from exc


def read_header(reader: CsvReader, path: str) -> tuple[list[str], int]:
    """The first non-blank, non-comment row, stripped; and its line number."""
    line_num = 0
    for row in reader:
        line_num = reader.line_num
        if not row or not any(c.strip() for c in row):
            continue
        if row[0].lstrip().startswith("#"):
            continue
        return [c.strip() for c in row], line_num
    raise TraceFormatError(
        message=f"{path}: the file is empty (no header row)",
        hint="the first line must be the CSV header, e.g. submit_time,duration_s,gpus",
    )


def check_columns(
    header: list[str],
    path: str,
    line: int,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    *,
    allow_unknown: bool,
) -> dict[str, int]:
    """Map column name -> index; missing required / unknown / duplicate are errors."""
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in index:
            raise TraceFormatError.at(
                path, line, name, "duplicate column in header", hint="remove one of them"
            )
        index[name] = i
    missing = [c for c in required if c not in index]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise TraceFormatError(
            message=f"{path}:{line}: missing required column(s) {names}",
            hint=f"the header needs {', '.join(required)}"
            + (f"; optional: {', '.join(optional)}" if optional else ""),
        )
    if not allow_unknown:
        known = set(required) | set(optional)
        unknown = [c for c in header if c not in known]
        if unknown:
            names = ", ".join(f"'{c}'" for c in unknown)
            raise TraceFormatError(
                message=f"{path}:{line}: unknown column(s) {names}",
                hint=f"allowed columns: {', '.join(required + optional)} "
                "(see docs/traces.md); remove or rename the others",
            )
    return index


def handle_row_error(
    err: RowError, path: str, line: int, skip_invalid: bool, skipped: list[SkippedRow]
) -> None:
    if not skip_invalid:
        raise TraceFormatError.at(path, line, err.column, err.message)
    skipped.append(SkippedRow(path=path, line=line, column=err.column, message=err.message))


def parse_float(value: str, column: str, *, allow_zero: bool = True) -> float:
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    what = "a non-negative number" if allow_zero else "a positive number"
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise RowError(column, f"expected {what} of seconds, got {value!r}")
    if x > MAX_TRACE_SECONDS:
        raise RowError(column, too_long(value))
    return x


def too_long(value: str) -> str:
    return f"{value!r} seconds is more than the limit of {MAX_TRACE_SECONDS:.0e} s (~31 years)"


def too_many_gpus(value: str) -> str:
    return f"{value!r} GPUs is more than the limit of {MAX_TRACE_GPUS:,}"


def parse_pos_int(value: str, column: str) -> int:
    try:
        n = int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f.is_integer()):
            raise RowError(column, f"expected a positive integer, got {value!r}") from None
        n = int(f)
    if n <= 0:
        raise RowError(column, f"expected a positive integer, got {value!r}")
    if n > MAX_TRACE_GPUS:
        raise RowError(column, too_many_gpus(value))
    return n


def parse_utc(value: str, column: str) -> float:
    """ISO-8601 timestamp -> epoch seconds; no offset means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            column,
            "expected seconds from the trace start or an ISO-8601 timestamp such as "
            f"2026-01-05T10:00:00Z, got {value!r}",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class _CheckedReader:
    """``csv.reader`` that never loses rows silently or raises ``csv.Error``.

    Trace formats have no multi-line fields, so a record with a line break inside a field
    means a quote was opened and not closed: the reader would swallow every following
    line into that field. That, and a field over ``csv.field_size_limit()``, stop the
    reader with a :class:`TraceFormatError` naming the line (always, even with
    ``skip_invalid``: the rows after it cannot be trusted).
    """

    def __init__(self, fh: IO[str], path: str) -> None:
        self._inner = csv.reader(fh)
        self._path = path
        self.line_num = 0
        self._rows = self._checked()

    def __iter__(self) -> Iterator[list[str]]:
        return self._rows

    def __next__(self) -> list[str]:
        return next(self._rows)

    def _checked(self) -> Iterator[list[str]]:
        inner, path = self._inner, self._path
        while True:
            start = self.line_num + 1  # the record's first physical line
            try:
                row = next(inner)
            except StopIteration:
                return
            except csv.Error as exc:
                line = max(inner.line_num, start)
                if "field larger than field limit" in str(exc):
                    raise TraceFormatError.at(
                        path, line, "", f"a field is longer than the limit of "
                        f"{csv.field_size_limit():,} characters",
                        hint="trace fields are short numbers and names; check the file",
                    ) from None
                raise TraceFormatError.at(
                    path, line, "", f"not valid CSV: {exc}", hint="fix the CSV syntax"
                ) from None
            self.line_num = inner.line_num
            joined = "".join(row)
            if "\n" in joined or "\r" in joined:
                end = inner.line_num
                runs = (f"runs on to line {end}, swallowing lines {start + 1}-{end}"
                        if end > start else "runs to the end of the file")
                raise TraceFormatError.at(
                    path, start, "", f"unclosed quote: the quoted field opened on this line "
                    f"{runs}; trace fields never span lines",
                    hint='close the quote (") on the same line, or remove it',
                )
            yield row


def new_reader(fh: IO[str], path: str) -> CsvReader:
    return _CheckedReader(fh, path)
