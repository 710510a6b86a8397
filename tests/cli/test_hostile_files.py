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


# --------------------------------------------------------------------------- traces

NATIVE_HEADER = "submit_time,duration_s,gpus,project\n"
PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def _trace(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def test_trace_huge_duration_is_refused_with_line_and_field(tmp_path: Path) -> None:
    t = _trace(tmp_path, "huge.csv", NATIVE_HEADER + "0,10,1,a\n5,1e308,1,a\n")
    out = str(tmp_path / "o.csv")
    for args in (["trace", "stats", str(t)], ["simulate", "--trace", str(t)],
                 ["trace", "convert", str(t), "--format", "native", "--out", out]):
        assert_clear_error(rw(*args), f"{t}:3:", "'duration_s'", "limit of 1e+09 s")


def test_trace_inf_nan_negative_durations_are_refused(tmp_path: Path) -> None:
    for value in ("inf", "nan", "-5"):
        t = _trace(tmp_path, f"d{value}.csv", NATIVE_HEADER + f"0,{value},1,a\n")
        assert_clear_error(rw("trace", "stats", str(t)), f"{t}:2:", "'duration_s'")


def test_philly_huge_duration_is_refused(tmp_path: Path) -> None:
    t = _trace(tmp_path, "p.csv", PHILLY_HEADER + "2017-10-09 07:01:55,1e308,1,1,vc1\n")
    assert_clear_error(rw("trace", "stats", str(t), "--format", "philly"),
                       f"{t}:2:", "'duration'", "limit of 1e+09 s")


def test_trace_gpus_and_time_span_are_bounded(tmp_path: Path) -> None:
    t = _trace(tmp_path, "g.csv", NATIVE_HEADER + "0,1,99999999,a\n")
    assert_clear_error(rw("trace", "stats", str(t)), f"{t}:2:", "'gpus'", "1,000,000")
    t = _trace(tmp_path, "iso.csv", "submit_time,duration_s,gpus\n"
               "2026-01-01T00:00:00Z,1,1\n9999-01-01T00:00:00Z,1,1\n")
    assert_clear_error(rw("trace", "stats", str(t)), f"{t}:3:", "'submit_time'", "1e+09 s")


def test_trace_megabyte_field_is_refused_with_line_and_limit(tmp_path: Path) -> None:
    t = _trace(tmp_path, "field.csv", NATIVE_HEADER + "0,10,1,a\n1,10,1," + "a" * 2**20 + "\n")
    for args in (["trace", "stats", str(t)], ["simulate", "--trace", str(t)]):
        assert_clear_error(rw(*args), f"{t}:3:", "131,072 characters")
    p = _trace(tmp_path, "pfield.csv", PHILLY_HEADER + "2017-10-09 07:01:55,1,1,1," + "v" * 2**20)
    assert_clear_error(rw("trace", "stats", str(p), "--format", "philly"), f"{p}:2:", "131,072")


def test_trace_unclosed_quote_never_swallows_rows(tmp_path: Path) -> None:
    body = NATIVE_HEADER + '0,10,1,a\n1,10,1,"b\n2,10,1,c\n3,10,1,d\n'
    t = _trace(tmp_path, "quote.csv", body)
    for args in (["trace", "stats", str(t)], ["trace", "stats", str(t), "--skip-invalid"],
                 ["simulate", "--trace", str(t)]):
        assert_clear_error(rw(*args), f"{t}:3:", "unclosed quote", "line 5")
    last = _trace(tmp_path, "last.csv", NATIVE_HEADER + '0,10,1,a\n1,10,1,"b\n')
    assert_clear_error(rw("trace", "stats", str(last)), f"{last}:3:", "unclosed quote")
    p = _trace(tmp_path, "pq.csv", PHILLY_HEADER + '2017-10-09 07:01:55,1,1,1,"vc1\n'
               "2017-10-09 07:01:56,1,1,1,vc2\n")
    assert_clear_error(rw("trace", "stats", str(p), "--format", "philly"), f"{p}:2:",
                       "unclosed quote")


def test_trace_quoted_fields_on_one_line_still_read(tmp_path: Path) -> None:
    t = _trace(tmp_path, "ok.csv", NATIVE_HEADER + '0,10,1,"a,b"\n1,10,1,c\n')
    res = rw("trace", "stats", str(t), "--json")
    assert res.returncode == 0, res.stderr
    assert '"jobs": 2' in res.stdout


# --------------------------------------------------------------------------- clusters


def test_simulate_huge_cluster_is_refused_naming_the_limit(tmp_path: Path) -> None:
    t = _trace(tmp_path, "t.csv", NATIVE_HEADER + "0,10,1,a\n")
    for cluster, limit in (("10000000x8", "limit of 100,000"), ("8x100000", "limit of 256"),
                           ("4000x256", "limit of 1,000,000"), ("9" * 5000 + "x8", "100,000")):
        res = rw("simulate", "--trace", str(t), "--cluster", cluster)
        assert_clear_error(res, "cluster", limit)
    yml = tmp_path / "c.yaml"
    yml.write_text("groups:\n  - {count: 200000, gpus: 8}\n")
    assert_clear_error(rw("simulate", "--trace", str(t), "--cluster", str(yml)),
                       f"{yml}: groups[0]", "more nodes than the limit of 100,000")
