"""Hostile files through the real CLI: one clear error line, exit code 2, no traceback.

Each case names the file (and line or field) and the limit it broke (docs/security.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def rw(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
       stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "300", **(env or {})}
    res = subprocess.run(
        [sys.executable, "-m", "rechenwerk.cli.main", *args], env=full_env, cwd=cwd,
        input=stdin if stdin is not None else b"", capture_output=True, timeout=120, check=False,
    )
    return subprocess.CompletedProcess(res.args, res.returncode,
                                       res.stdout.decode(errors="replace"),
                                       res.stderr.decode(errors="replace"))


def assert_clear_error(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out[-3000:]
    assert res.returncode == 2, (res.returncode, out[-3000:])
    first = res.stderr.splitlines()[0]
    assert first.startswith("error: "), res.stderr
    for needle in needles:
        assert needle in first, (needle, first)
    return first


# --------------------------------------------------------------------------- job specs


def test_submit_deeply_nested_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("name: x\nproject: p\ncommand: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert_clear_error(rw("submit", str(spec)), str(spec), "limit of 32 levels", "line 3")


def test_submit_deeply_nested_json(tmp_path: Path) -> None:
    spec = tmp_path / "deep.json"
    spec.write_text('{"name": "x", "env": ' + "[" * 10_000 + "]" * 10_000 + "}")
    assert_clear_error(rw("submit", str(spec)), str(spec), "limit of 32 levels")


def test_submit_brackets_inside_json_strings_are_not_nesting(tmp_path: Path) -> None:
    spec = tmp_path / "ok.json"
    spec.write_text('{"name": "x", "project": "p", "gpus": 1, "walltime": "1h", '
                    '"command": ["echo", "' + "[" * 100 + '\\"{"]}')
    res = rw("submit", str(spec), env={"RECHENWERK_API_URL": "http://127.0.0.1:9"})
    assert "nested deeper" not in res.stderr and "Traceback" not in res.stderr


def test_submit_non_utf8_spec(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"name: caf\xe9\nproject: p\n")
    assert_clear_error(rw("submit", str(spec)), str(spec), "not UTF-8", "byte 9")


def test_submit_non_utf8_spec_on_stdin() -> None:
    res = rw("submit", "-", stdin=b"name: \xff\xfe\n")
    assert_clear_error(res, "job spec (stdin)", "not UTF-8")


def test_submit_spec_over_the_size_limit(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text("name: x\n# " + "a" * (1024 * 1024) + "\n")
    assert_clear_error(rw("submit", str(spec)), str(spec), "1,048,576 bytes")
