"""Submission throughput Rechenwerk -> Slurm vs plain ``sbatch`` in the same run, and the
time from submit to RUNNING, against the real daemons of ``scripts/slurm-dev up`` on each
dev cluster (22.05 on the host; 24.11 and 26.05 in their Debian roots, reached through
``chroot <root>`` as Rechenwerk's RECHENWERK_SLURM_COMMAND_PREFIX does).

Per cluster, rounds alternate (sbatch, Rechenwerk CLI transport, Rechenwerk REST
transport) so that load from other processes on the machine hits all three alike. Each
round submits N trivial jobs (``true``, no GPU) one after another in one account; the
Rechenwerk path is ``SlurmBackend.submit(LaunchRequest)``: validation, batch script
generation with quoted env, log directory, then ``sbatch --parsable`` (CLI) or
``POST /slurm/<format>/job/submit`` over the unix socket (REST, the newest format both
know). Latency: M one-GPU ``sleep`` jobs per transport, each submitted on an idle
cluster, polled through the same transport every 50 ms until RUNNING.

    sudo scripts/slurm-dev up   # and SLURM_DEV_RELEASE=24.11 / 26.05 scripts/slurm-dev up
    .venv/bin/python benchmarks/bench_slurm_submit.py --jobs 100 --rounds 3 --latency 10 \
        [--cluster 22.05 --cluster 24.11 --cluster 26.05] [--markdown]
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

# The dev clusters of scripts/slurm-dev: command prefix and slurmrestd's unix socket.
CLUSTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "22.05": ((), "unix:/run/slurmrestd.sock"),
    "24.11": (("chroot", "/var/lib/rechenwerk-slurm/24.11"),
              "unix:/var/lib/rechenwerk-slurm/24.11/run/slurmrestd.sock"),
    "26.05": (("chroot", "/var/lib/rechenwerk-slurm/26.05"),
              "unix:/var/lib/rechenwerk-slurm/26.05/run/slurmrestd.sock"),
}
PREFIX: tuple[str, ...] = ()  # the cluster being measured


def sh(*argv: str) -> str:
    return subprocess.run([*PREFIX, *argv], check=True, capture_output=True, text=True).stdout


def is_up(cluster: str) -> bool:
    prefix = CLUSTERS[cluster][0]
    if prefix and not Path(prefix[1], ".rechenwerk-root-ready").exists():
        return False
    try:
        proc = subprocess.run([*prefix, "scontrol", "ping"], capture_output=True, text=True,
                              timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "is UP" in proc.stdout


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


def measure(cluster: str, jobs: int, rounds: int, m: int) -> dict[str, object]:
    """One cluster: the three paths' rates, alternating, and both transports' latency."""
    global PREFIX
    PREFIX, rest_url = CLUSTERS[cluster]
    account = f"rwbench{uuid.uuid4().hex[:6]}"
    sh("sacctmgr", "-i", "add", "account", account)
    sh("sacctmgr", "-i", "add", "user", "root", f"account={account}")
    tmp = Path(tempfile.mkdtemp(prefix="rwbench-"))
    cli = SlurmBackend(CliTransport(command_prefix=PREFIX), submit_as_user=False)
    rest = SlurmBackend(RestTransport(rest_url, command_prefix=PREFIX), submit_as_user=False)
    rates: dict[str, list[float]] = {"sbatch": [], "rechenwerk-cli": [], "rechenwerk-rest": []}
    try:
        for _ in range(rounds):
            for name, fn in (
                ("sbatch", lambda: round_sbatch(account, tmp, jobs)),
                ("rechenwerk-cli", lambda: round_backend(cli, account, tmp, jobs)),
                ("rechenwerk-rest", lambda: round_backend(rest, account, tmp, jobs)),
            ):
                wait_empty(account)
                rates[name].append(jobs / fn())
        wait_empty(account)
        lat = {"cli": latency(cli, account, tmp, m), "rest": latency(rest, account, tmp, m)}
        formats = {"cli": cli.transport.schema.VERSION, "rest": rest.transport.schema.VERSION}
    finally:
        subprocess.run([*PREFIX, "scancel", f"--account={account}"], capture_output=True)
        cli.close()
        rest.close()
        wait_empty(account)
        subprocess.run([*PREFIX, "sacctmgr", "-i", "delete", "account", account],
                       capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "slurm": sh("sinfo", "--version").strip(),
        "formats": formats,
        "jobs_per_s_median": {k: round(v, 1) for k, v in med.items()},
        "jobs_per_s_all": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_cli_vs_sbatch": round(med["rechenwerk-cli"] / med["sbatch"], 3),
        "ratio_rest_vs_sbatch": round(med["rechenwerk-rest"] / med["sbatch"], 3),
        "submit_to_running_s": {
            t: {"n": len(v), "p50": round(statistics.median(v), 3),
                "min": round(min(v), 3), "max": round(max(v), 3)}
            for t, v in lat.items()},
    }


def markdown(results: dict[str, dict[str, object]]) -> str:
    rows = ["| Slurm | path | format | jobs/s (median) | rounds | vs plain sbatch | "
            "submit -> RUNNING p50 (min-max) s |", "|---|---|---|---:|---|---:|---|"]
    for cluster, r in results.items():
        med: dict[str, float] = r["jobs_per_s_median"]  # type: ignore[assignment]
        every: dict[str, list[float]] = r["jobs_per_s_all"]  # type: ignore[assignment]
        fmts: dict[str, str] = r["formats"]  # type: ignore[assignment]
        lat: dict[str, dict[str, float]] = r["submit_to_running_s"]  # type: ignore[assignment]
        for path, label, fmt, t in (("sbatch", "plain `sbatch --parsable --wrap true`", "-", None),
                                    ("rechenwerk-cli", "Rechenwerk, CLI transport", fmts["cli"],
                                     "cli"),
                                    ("rechenwerk-rest", "Rechenwerk, REST (unix socket)",
                                     fmts["rest"], "rest")):
            times = (f"{lat[t]['p50']:.2f} ({lat[t]['min']:.2f}-{lat[t]['max']:.2f})"
                     if t else "-")
            rows.append(f"| {r['slurm']} ({cluster}) | {label} | {fmt} | {med[path]:.1f} | "
                        f"{', '.join(f'{x:.1f}' for x in every[path])} | "
                        f"{med[path] / med['sbatch']:.2f} | {times} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency", type=int, default=10)
    ap.add_argument("--cluster", action="append", choices=sorted(CLUSTERS),
                    help="a dev cluster to measure (repeatable; default: every one that is up)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (creates a Slurm account)")
    clusters = args.cluster or [c for c in CLUSTERS if is_up(c)]
    down = [c for c in clusters if not is_up(c)]
    if down or not clusters:
        raise SystemExit(f"Slurm dev cluster(s) not up: {', '.join(down) or 'none is'}; run "
                         "scripts/slurm-dev up (SLURM_DEV_RELEASE=24.11|26.05 for the others)")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    results = {c: measure(c, args.jobs, args.rounds, args.latency) for c in clusters}
    print(json.dumps({"date": started, "machine": f"{platform.node()} {os.cpu_count()} CPUs",
                      "jobs_per_round": args.jobs, "rounds": args.rounds,
                      "clusters": results}, indent=2))
    if args.markdown:
        print(markdown(results))


if __name__ == "__main__":
    main()
