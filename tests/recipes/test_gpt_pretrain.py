"""The gpt-pretrain recipe's script on CPU, as real processes: the loss falls; SIGTERM
mid-run checkpoints at the current step and a rerun continues from exactly there (same
weights and data position: it ends with the same loss as an uninterrupted run); two
ranks under torchrun train data-parallel over gloo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rechenwerk.recipes import RECIPES

pytest.importorskip("torch", reason="torch is not installed in this venv "
                    "(pip install -e '.[recipes]' installs the CPU build 2.13.0)")

SCRIPT = (Path(__file__).resolve().parents[2] / "src" / "rechenwerk" / "recipes"
          / RECIPES["gpt-pretrain"].directory / RECIPES["gpt-pretrain"].script)
STEP = re.compile(r"^step=(\d+)/(\d+) loss=([\d.]+) lr=\S+ tok/s=(\d+) mfu=(\S+)$", re.M)
# Small and quick: ~120k parameters, one thread per rank.
TINY = ["--preset", "tiny", "--seq-len", "32", "--batch-size", "8", "--warmup", "5"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RECHENWERK_")}
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, str(SCRIPT), *TINY, *args], cwd=cwd, env=env(),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def steps(out: str) -> list[tuple[int, float]]:
    return [(int(m[0]), float(m[2])) for m in STEP.findall(out)]


def metrics(cwd: Path, job: str = "local") -> Any:
    return json.loads((cwd / "runs" / f"job-{job}" / "metrics.json").read_text())


def test_loss_falls_on_cpu(tmp_path: Path) -> None:
    r = run(tmp_path, "--steps", "40", "--log-every", "10")
    logged = steps(r.stdout)
    assert [s for s, _ in logged] == [10, 20, 30, 40]
    assert all(m[4] == "cpu" for m in STEP.findall(r.stdout))  # no GPU: MFU says cpu
    m = metrics(tmp_path)
    assert m["steps"] == 40 and m["world_size"] == 1 and m["device"] == "cpu"
    assert m["mfu"] is None and m["tokens"] == 40 * 8 * 32 and m["tokens_per_s"] > 0
    # From ~ln(256) = 5.5 nats (uniform bytes) to well below it.
    assert m["first_loss"] > 5.0
    assert m["final_loss"] < m["first_loss"] - 1.5 and m["val_loss"] < 4.0
    assert logged[-1][1] == pytest.approx(m["final_loss"], abs=1e-4)
    assert "checkpoint step=40 reason=final" in r.stdout
    assert re.search(r"^done steps=40 loss=\S+ val_loss=\S+ metrics=runs/job-local/"
                     r"metrics.json$", r.stdout, re.M)


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_rerun_continues_there(tmp_path: Path) -> None:
    import torch

    total = ["--steps", "120", "--log-every", "5", "--ckpt-every", "1000"]
    ref_dir, dir_ = tmp_path / "reference", tmp_path / "interrupted"
    ref_dir.mkdir()
    dir_.mkdir()
    run(ref_dir, *total)
    reference = metrics(ref_dir)

    proc = subprocess.Popen([sys.executable, str(SCRIPT), *TINY, *total], cwd=dir_, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # SIGTERM as soon as training is under way
        lines.append(line)
        if line.startswith("step=10/"):
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(lines)
    out, err = proc.communicate(timeout=60)
    out = "".join(lines) + out
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    stopped = re.search(r"^checkpoint step=(\d+) reason=signal path=(\S+)$", out, re.M)
    assert stopped, out
    at = int(stopped[1])
    assert 10 <= at < 120
    assert steps(out)[-1][0] == at  # the step it was on when it stopped is logged
    ckpt = torch.load(dir_ / stopped[2], weights_only=False)
    assert ckpt["step"] == at and ckpt["cursor"] == at * 8  # samples consumed by 1 rank
    assert not (dir_ / "runs" / "job-local" / "metrics.json").exists()

    again = run(dir_, *total)
    assert f"resumed from runs/job-local/checkpoint.pt at step={at} cursor={at * 8}" in \
        again.stdout
    logged = steps(again.stdout)
    assert logged[0][0] > at and logged[-1][0] == 120
    resumed = metrics(dir_)
    assert resumed["resumed_from_step"] == at and resumed["steps"] == 120
    # Nothing was lost or repeated: same weights, same batches, so the same end.
    assert resumed["first_loss"] == pytest.approx(reference["first_loss"], rel=1e-6)
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-4)
    assert resumed["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-4)
    # Requeued after the end (e.g. preempted while writing metrics): nothing trains again.
    done = run(dir_, *total)
    assert steps(done.stdout) == [] and "resumed from" in done.stdout
    assert metrics(dir_)["final_loss"] == resumed["final_loss"]


@pytest.mark.slow
def test_two_ranks_under_torchrun_on_gloo(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
         "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(SCRIPT), *TINY,
         "--steps", "30", "--log-every", "10"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "world=2 backend=gloo device=cpu" in r.stdout
    assert [s for s, _ in steps(r.stdout)] == [10, 20, 30]  # rank 0 only logs
    m = metrics(tmp_path)
    assert m["world_size"] == 2 and m["tokens"] == 30 * 2 * 8 * 32
    assert m["final_loss"] < m["first_loss"] - 1.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
