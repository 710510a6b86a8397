"""How the CLI talks to people: Rich tables, ``--json``, and one-line errors with exit codes.

Errors are mapped here once: a :class:`RechenwerkError` becomes ``error: <message>`` (plus
the hint) on stderr and the error's ``exit_code``; never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from rich.console import Console
from rich.table import Table

from rechenwerk.errors import RechenwerkError

PIPED_WIDTH = 200


def _make_console(stderr: bool = False) -> Console:
    # Piped output (less, grep, files) would otherwise be wrapped and cut with "..." at
    # Rich's 80-column default; COLUMNS still wins when set. soft_wrap: plain lines
    # (errors above all) stay one line whatever the terminal's width, so they can be
    # grepped and copied; only tables are fitted to the width.
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = PIPED_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return Console(stderr=stderr, width=width, soft_wrap=True)


console = _make_console()
err_console = _make_console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(error: RechenwerkError) -> None:
    """Print one clear line (and the hint) and exit with the error's code."""
    where = f" (field: {error.field})" if error.field else ""
    err_console.print(f"[bold red]error:[/] {error.message}{where}", highlight=False)
    if len(error.issues) > 1:  # a single issue is the message already
        for issue in error.issues:
            err_console.print(f"  - {issue.path}: {issue.message}", highlight=False)
    if error.hint:
        err_console.print(f"[dim]hint: {error.hint}[/]", highlight=False)
    raise SystemExit(error.exit_code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for CLI commands: RechenwerkError -> one-line message + exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RechenwerkError as exc:
            fail(exc)
            raise AssertionError("unreachable") from exc

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
