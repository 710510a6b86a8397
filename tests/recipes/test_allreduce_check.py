"""The allreduce-check recipe's script on CPU: two ranks under torchrun (gloo) produce a
checked bandwidth table with nccl-tests' bus bandwidth and PASS; a bandwidth floor that
cannot be met gives FAIL and exit code 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rechenwerk.recipes import RECIPES

pytest.importorskip("torch", reason="torch is not installed in this venv "
                    "(pip install -e '.[recipes]' installs the CPU build 2.13.0)")

SCRIPT = (Path(__file__).resolve().parents[2] / "src" / "rechenwerk" / "recipes"
          / RECIPES["allreduce-check"].directory / RECIPES["allreduce-check"].script)
ROW = re.compile(r"^\s+([\d.]+ (?:B|KiB|MiB)) +(\d+) +([\d.]+) +([\d.]+) +([\d.]+)  (\S+)$",
                 re.M)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RECHENWERK_")}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_pass_with_a_bus_bandwidth_table(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
         "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(SCRIPT),
         "--min-bytes", "1024", "--max-bytes", str(1 << 20), "--factor", "16", "--iters", "3"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "allreduce-check: 2 ranks, backend=gloo, device=cpu" in r.stdout
    assert r.stdout.count("  rank ") == 2
    rows = ROW.findall(r.stdout)
    assert [(size, int(count)) for size, count, *_ in rows] == [
        ("1 KiB", 256), ("16 KiB", 4096), ("256 KiB", 65536)]
    assert all(row[5] == "ok" for row in rows)
    assert re.search(r"^allreduce-check: PASS ranks=2 max_busbw_GBps=[\d.]+$", r.stdout, re.M)
    result = json.loads((tmp_path / "runs" / "job-local" / "allreduce.json").read_text())
    assert result["passed"] and result["ranks"] == 2 and len(result["rows"]) == 3
    for row in result["rows"]:
        assert row["ok"] and row["time_us"] > 0
        assert row["algbw_gbs"] == pytest.approx(row["bytes"] / (row["time_us"] * 1e-6) / 1e9)
        assert row["busbw_gbs"] == pytest.approx(row["algbw_gbs"] * 2 * (2 - 1) / 2)


def test_an_unmet_bandwidth_floor_fails(tmp_path: Path) -> None:
    # One process: nothing to reduce with, bus bandwidth 0 (2(n-1)/n = 0), so any floor fails.
    r = subprocess.run([sys.executable, str(SCRIPT), "--max-bytes", "4096", "--iters", "1",
                        "--min-busbw", "1", "--out", str(tmp_path / "r.json")],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "allreduce-check: FAIL ranks=1 max_busbw_GBps=0.00 (busbw 0.00 GB/s < " \
           "--min-busbw 1)" in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False
