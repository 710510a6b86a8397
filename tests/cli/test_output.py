"""The CLI's error line stays one line on any terminal width (grep-able, copyable)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from rechenwerk.cli import output
from rechenwerk.errors import InvalidInput


def test_error_is_one_line_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    narrow = Console(file=buf, width=40, soft_wrap=True)
    monkeypatch.setattr(output, "err_console", narrow)
    long_path = "/check/work/main/tests/simulation/data/native_bad_gpus.csv"
    error = InvalidInput(f"{long_path}:3: column 'gpus': expected a positive integer",
                             hint="fix the row, or pass --skip-invalid")
    with pytest.raises(SystemExit) as exc:
        output.fail(error)
    assert exc.value.code == error.exit_code
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"error: {long_path}:3: column 'gpus': expected a positive integer"
    assert lines[1] == "hint: fix the row, or pass --skip-invalid"
    assert len(lines) == 2


def test_module_consoles_never_wrap_plain_lines() -> None:
    assert output.console.soft_wrap and output.err_console.soft_wrap
