"""A/B: one benchmark command on the code of two commits, alternating, in one sitting.

On a noisy 2-core machine only ratios measured side by side mean something, so this runs
the same command on A (``--before``, checked out as a temporary git worktree) and B (the
working tree: ``--after``, default the current checkout) in turns A B A B ..., each with
its own ``src/`` first on ``PYTHONPATH`` and its own ``benchmarks/`` script, and prints
every round's figures with the ratio B/A and the spread over the rounds.

    .venv/bin/python benchmarks/ab.py --before ed56ff6 --rounds 3 \\
        --metric cycle_ms_median --metric cycle_cpu_ms_median -- \\
        benchmarks/bench_scheduler_cycle.py --pg

The command's result is the last JSON object it prints on stdout, or the JSON file it
writes where the command contains ``{json}`` (replaced by a temporary path). A metric is
a key of that object; ``[3].jobs_per_second`` or ``rows[3].x`` reach into lists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _last_json(text: str) -> Any:
    starts = [m.start() for m in re.finditer(r"^[{\[]", text, re.M)]
    for start in reversed(starts):
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    raise SystemExit(f"no JSON result in the command's output:\n{text[-2000:]}")


def _get(data: Any, path: str) -> float:
    for part in path.split("."):
        m = re.fullmatch(r"(\w*)(?:\[(\d+)\])?", part)
        if m is None or not part:
            raise SystemExit(f"bad metric path {path!r}")
        if m.group(1):
            data = data[m.group(1)]
        if m.group(2) is not None:
            data = data[int(m.group(2))]
    return float(data)


def _run(tree: Path, command: list[str]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "result.json"
        argv = [a.replace("{json}", str(out_file)) for a in command]
        if argv and argv[0].endswith(".py"):
            argv = [sys.executable, str(tree / argv[0]), *argv[1:]]
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed in {tree}:\n{proc.stderr[-3000:]}")
        if any("{json}" in a for a in command):
            return json.loads(out_file.read_text())
        return _last_json(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="commit of side A")
    ap.add_argument("--after", default=None, help="commit of side B (default: this tree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--metric", action="append", required=True)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the benchmark command after --")
    with tempfile.TemporaryDirectory(prefix="rw-ab-") as tmp:
        trees: dict[str, Path] = {}
        for side, rev in (("A", args.before), ("B", args.after)):
            if rev is None:
                trees[side] = ROOT
                continue
            path = Path(tmp) / side
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(path), rev], check=True)
            trees[side] = path
        # The benchmarks read ../shared (traces) beside the checkout: give A the same.
        shared = ROOT.parent / "shared"
        if "A" in trees and trees["A"] != ROOT and shared.is_dir():
            (Path(tmp) / "shared").symlink_to(shared)
        results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        try:
            for r in range(args.rounds):
                for side in ("A", "B"):
                    data = _run(trees[side], command)
                    figures = {m: _get(data, m) for m in args.metric}
                    results[side].append(figures)
                    print(f"round {r + 1} {side}: " + ", ".join(
                        f"{m}={v:g}" for m, v in figures.items()), flush=True)
        finally:
            for side, rev in (("A", args.before), ("B", args.after)):
                if rev is not None:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(trees[side])], check=False)
    after = args.after or "this tree"
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; A={args.before} B={after}; "
          f"command: {' '.join(command)}")
    print("| metric | A (median) | B (median) | B/A per round | B/A median |")
    print("|---|---:|---:|---|---:|")
    for m in args.metric:
        a = [x[m] for x in results["A"]]
        b = [x[m] for x in results["B"]]
        ratios = [bb / aa if aa else float("nan") for aa, bb in zip(a, b, strict=True)]
        print(f"| {m} | {statistics.median(a):g} | {statistics.median(b):g} | "
              + ", ".join(f"{q:.2f}" for q in ratios)
              + f" | {statistics.median(ratios):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
