#!/usr/bin/env python3
"""A small, real training-like job for trying Rechenwerk: fits y = 3x + 2 by SGD.

It prints progress, checkpoints every ``--checkpoint-every`` steps and when it receives
SIGTERM (walltime, cancel or preemption), and resumes from its checkpoint when it is
requeued. Standard library only; runs a few seconds.

    python3 train_demo.py --steps 20 --step-time 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path


def default_checkpoint() -> Path:
    # The job's directory outlives its attempts: <data>/logs/<job id>/checkpoint.json
    log_dir = os.environ.get("RECHENWERK_LOG_DIR")
    base = Path(log_dir).parent if log_dir else Path.cwd()
    return base / "checkpoint.json"


def save(path: Path, state: dict[str, float]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--step-time", type=float, default=0.25, help="seconds per step")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--checkpoint-every", type=int, default=5)
    args = ap.parse_args()
    ckpt = args.checkpoint or default_checkpoint()

    state = {"step": 0, "w": 0.0, "b": 0.0}
    if ckpt.exists():
        state = json.loads(ckpt.read_text())
        print(f"resumed from {ckpt} at step {int(state['step'])}", flush=True)

    stop = {"signal": None}

    def on_term(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_term)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "none")
    print(f"training on GPUs {gpus} (job {os.environ.get('RECHENWERK_JOB_ID', '-')}, "
          f"attempt {os.environ.get('RECHENWERK_ATTEMPT', '-')})", flush=True)
    rng = random.Random(int(state["step"]))
    while state["step"] < args.steps:
        if stop["signal"] is not None:
            save(ckpt, state)
            print(f"SIGTERM at step {int(state['step'])}: checkpoint written to {ckpt}",
                  flush=True)
            return 0
        loss = 0.0
        for _ in range(64):  # one mini-batch of SGD on y = 3x + 2 + noise
            x = rng.uniform(-1, 1)
            y = 3 * x + 2 + rng.gauss(0, 0.05)
            err = state["w"] * x + state["b"] - y
            state["w"] -= args.lr * err * x
            state["b"] -= args.lr * err
            loss += err * err / 64
        state["step"] += 1
        print(f"step {int(state['step'])}/{args.steps} loss={loss:.4f} "
              f"w={state['w']:.3f} b={state['b']:.3f}", flush=True)
        if state["step"] % args.checkpoint_every == 0:
            save(ckpt, state)
        time.sleep(args.step_time)
    save(ckpt, state)
    print(f"done: w={state['w']:.3f} b={state['b']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
