"""Submission throughput Rechenwerk -> Slurm vs plain ``sbatch`` in the same run, and the
time from submit to RUNNING, against the real daemons of ``scripts/slurm-dev up``.

Rounds alternate (sbatch, Rechenwerk CLI transport, Rechenwerk REST transport) so that
load from other processes on the machine hits all three alike. Each round submits N
trivial jobs (``true``, no GPU) one after another in one account; the Rechenwerk path is
``SlurmBackend.submit(LaunchRequest)``: validation, batch script generation with quoted
env, log directory, then ``sbatch --parsable`` (CLI) or ``POST /slurm/v0.0.38/job/submit``
over the unix socket (REST). Latency: M one-GPU ``sleep`` jobs, each submitted on an
idle cluster, polled with ``squeue --json`` every 50 ms until RUNNING.

    sudo scripts/slurm-dev up
    .venv/bin/python benchmarks/bench_slurm_submit.py --jobs 100 --rounds 3 --latency 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.execution.base import BackendJobState, LaunchRequest
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.execution.slurm.cli_transport import CliTransport
from rechenwerk.execution.slurm.rest_transport import RestTransport


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def wait_empty(account: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sh("squeue", "-h", f"--account={account}", "-o", "%A").strip():
            return
        time.sleep(0.2)
    raise SystemExit(f"jobs of {account} did not drain within {timeout} s")


def req(
    account: str, tmp: Path, i: int, *, gpus: int = 0, cmd: tuple[str, ...] = ("true",)
) -> LaunchRequest:
    return LaunchRequest(
        job_id=str(i),
        attempt=1,
        name=f"bench-{i}",
        project=account,
        user="root",
        command=cmd,
        script=None,
        workdir=str(tmp),
        env={"BENCH": "1"},
        gpus=gpus,
        nodes=1,
        gpus_per_node=gpus,
        walltime_s=300,
        qos="normal",
        log_dir=str(tmp / "logs"),
    )


def round_sbatch(account: str, tmp: Path, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        sh(
            "sbatch",
            "--parsable",
            f"--account={account}",
            "--time=5",
            f"--output={tmp}/sb-%j.out",
            "--wrap",
            "true",
        )
    return time.perf_counter() - t0


def round_backend(backend: SlurmBackend, account: str, tmp: Path, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        backend.submit(req(account, tmp, i))
    return time.perf_counter() - t0


def latency(backend: SlurmBackend, account: str, tmp: Path, m: int) -> list[float]:
    out: list[float] = []
    for i in range(m):
        t0 = time.perf_counter()
        handle = backend.submit(req(account, tmp, 1000 + i, gpus=1, cmd=("sleep", "2")))
        while True:
            st = backend.poll([handle])[handle]
            if st.state is not BackendJobState.PENDING:
                out.append(time.perf_counter() - t0)
                break
            time.sleep(0.05)
        backend.cancel(handle)
        wait_empty(account)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (creates a Slurm account)")
    account = f"rwbench{uuid.uuid4().hex[:6]}"
    sh("sacctmgr", "-i", "add", "account", account)
    sh("sacctmgr", "-i", "add", "user", "root", f"account={account}")
    tmp = Path(tempfile.mkdtemp(prefix="rwbench-"))
    cli = SlurmBackend(CliTransport(), submit_as_user=False)
    rest = SlurmBackend(RestTransport("unix:/run/slurmrestd.sock"), submit_as_user=False)
    rates: dict[str, list[float]] = {"sbatch": [], "rechenwerk-cli": [], "rechenwerk-rest": []}
    try:
        for _ in range(args.rounds):
            for name, fn in (
                ("sbatch", lambda: round_sbatch(account, tmp, args.jobs)),
                ("rechenwerk-cli", lambda: round_backend(cli, account, tmp, args.jobs)),
                ("rechenwerk-rest", lambda: round_backend(rest, account, tmp, args.jobs)),
            ):
                wait_empty(account)
                rates[name].append(args.jobs / fn())
        wait_empty(account)
        lat = latency(cli, account, tmp, args.latency)
    finally:
        subprocess.run(["scancel", f"--account={account}"], capture_output=True)
        cli.close()
        rest.close()
        wait_empty(account)
        subprocess.run(["sacctmgr", "-i", "delete", "account", account], capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "slurm": sh("sinfo", "--version").strip(),
        "jobs_per_round": args.jobs,
        "rounds": args.rounds,
        "jobs_per_s_median": {k: round(v, 1) for k, v in med.items()},
        "jobs_per_s_all": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_cli_vs_sbatch": round(med["rechenwerk-cli"] / med["sbatch"], 3),
        "ratio_rest_vs_sbatch": round(med["rechenwerk-rest"] / med["sbatch"], 3),
        "submit_to_running_s": {
            "n": len(lat),
            "p50": round(statistics.median(lat), 3),
            "max": round(max(lat), 3),
            "min": round(min(lat), 3),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
