"""Replay a prepared trace slice on a real Slurm cluster and read back what happened
(``rechenwerk twin validate``; docs/scheduling.md "Fidelity against real Slurm").

Each job is ``sbatch --wrap 'sleep D'`` with the slice's shape, submitted as ``user``
(through ``runuser`` when running as root) under ``account`` at its scaled submit time.
The replay's origin ``t0`` is a whole second, and submissions are made just after their
second begins, so Slurm's whole-second clock sees the slice's own offsets. Start and end
times come from ``sacct`` (epoch seconds via ``SLURM_TIME_FORMAT=%s``) once every job has
ended. ``temporary_account`` creates a unique account for one replay and removes it,
with any job left, afterwards.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rechenwerk.errors import InvalidInput, RechenwerkError
from rechenwerk.simulation.fidelity import JobTimes
from rechenwerk.simulation.twin import TwinJob

_TERMINAL = (
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)


class ReplayError(RechenwerkError):
    code = "slurm_replay"
    title = "Slurm replay failed"


def _run(argv: Sequence[str], *, timeout: float = 60.0, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplayError(f"`{' '.join(argv[:3])} ...` failed: {exc}") from exc
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise ReplayError(
            f"`{' '.join(argv[:3])} ...` failed: {msg[-1] if msg else proc.returncode}"
        )
    return proc.stdout


@contextlib.contextmanager
def temporary_account(user: str, prefix: str = "rwtwin") -> Iterator[str]:
    """A fresh Slurm account with ``user`` in it; cancelled and deleted afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    _run(["sacctmgr", "-i", "add", "account", name, f"Description=rechenwerk twin {name}"])
    try:
        _run(["sacctmgr", "-i", "add", "user", user, f"account={name}"])
        yield name
    finally:
        subprocess.run(["scancel", f"--account={name}"], capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = subprocess.run(
                ["squeue", "-h", f"--account={name}", "-o", "%A"], capture_output=True, text=True
            ).stdout
            if not left.strip():
                break
            time.sleep(0.5)
        subprocess.run(["sacctmgr", "-i", "delete", "account", name], capture_output=True)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    t0: float  # epoch second of the replay's origin
    times: dict[str, JobTimes]  # trace job id -> times relative to t0
    slurm_ids: dict[str, str]  # trace job id -> Slurm job id
    states: dict[str, str]


def sbatch_argv(job: TwinJob, account: str, workdir: str) -> list[str]:
    return [
        "sbatch",
        "--parsable",
        "-A",
        account,
        "-J",
        job.job_id,
        "-N",
        str(job.nodes),
        "--ntasks-per-node=1",
        "-c",
        str(job.cpus_per_node),
        f"--gres=gpu:{job.gpus // job.nodes}",
        "-t",
        str(job.time_limit_min),
        "-o",
        "/dev/null",
        "-e",
        "/dev/null",
        f"--chdir={workdir}",
        "--wrap",
        f"exec sleep {job.duration_s}",
    ]


def replay(
    jobs: Sequence[TwinJob],
    *,
    account: str,
    user: str,
    workdir: str = "/tmp",
    deadline_s: float = 600.0,
    progress: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Submit every job at ``t0 + submit_s``, wait for all to end, read sacct."""
    if not jobs:
        raise InvalidInput("nothing to replay", field="jobs")
    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    order = sorted(jobs, key=lambda j: j.submit_s)
    t0 = float(math.floor(time.time()) + 2)
    stop_at = time.monotonic() + deadline_s
    ids: dict[str, str] = {}
    late = 0.0
    for j in order:
        when = t0 + j.submit_s + 0.02
        pause = when - time.time()
        if pause > 0:
            time.sleep(pause)
        else:
            late = max(late, -pause)
        out = _run([*prefix, *sbatch_argv(j, account, workdir)])
        ids[j.job_id] = out.strip().split(";")[0]
    if progress:
        progress(f"submitted {len(ids)} jobs (latest submission {late:.2f} s late)")
    by_slurm = {v: k for k, v in ids.items()}
    env = dict(os.environ, SLURM_TIME_FORMAT="%s")
    while True:
        out = _run(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                ",".join(ids.values()),
                "--format=JobID,Submit,Start,End,State",
            ],
            env=env,
        )
        rows = [r.split("|") for r in out.splitlines() if r.strip()]
        done = {
            r[0]: r
            for r in rows
            if r[0] in by_slurm and r[4].split()[0] in _TERMINAL and r[3].isdigit()
        }
        if len(done) == len(ids):
            break
        if time.monotonic() > stop_at:
            raise ReplayError(
                f"the replay did not finish within {deadline_s:.0f} s "
                f"({len(done)}/{len(ids)} jobs ended); its jobs are cancelled",
            )
        time.sleep(2.0)
    times: dict[str, JobTimes] = {}
    states: dict[str, str] = {}
    shape = {j.job_id: j for j in jobs}
    for sid, (_, sub, start, end, state) in done.items():
        tid = by_slurm[sid]
        if not start.isdigit():  # cancelled before it started
            states[tid] = state
            continue
        times[tid] = JobTimes(int(sub) - t0, int(start) - t0, int(end) - t0, shape[tid].gpus)
        states[tid] = state.split()[0]
    return ReplayResult(t0, times, ids, states)


def backfill_phase(t0: float, interval: float) -> float | None:
    """The phase (seconds from ``t0``, in [0, interval)) of the backfill thread's timer:
    from ``sdiag``'s "Last cycle when: ... (EPOCH)"; None if it has not run yet."""
    out = _run(["sdiag"])
    block = out.split("Backfilling stats", 1)[-1]
    for line in block.splitlines():
        if "Last cycle when" in line and "(" in line:
            epoch = line.rsplit("(", 1)[1].rstrip(")").strip()
            if epoch.isdigit() and interval > 0:
                return (int(epoch) - t0) % interval
    return None
