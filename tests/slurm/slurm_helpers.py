"""Small builders for the Slurm tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rechenwerk.execution.base import (
    TERMINAL_BACKEND_STATES,
    BackendJobStatus,
    ExecutionBackend,
    LaunchRequest,
)
from waiting import DEADLINE_S, wait_for


def request(
    account: str,
    user: str,
    tmp: Path,
    *,
    command: tuple[str, ...] | None = ("true",),
    script: str | None = None,
    name: str = "t",
    gpus_per_node: int = 1,
    nodes: int = 1,
    walltime_s: int = 120,
    env: Mapping[str, str] | None = None,
    job_id: str = "1",
    qos: str = "normal",
) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id,
        attempt=1,
        name=name,
        project=account,
        user=user,
        command=command,
        script=script,
        workdir=str(tmp),
        env=dict(env or {}),
        gpus=gpus_per_node * nodes,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        walltime_s=walltime_s,
        qos=qos,
        log_dir=str(tmp / f"logs-{job_id}"),
    )


def wait_state(
    backend: ExecutionBackend,
    handle: str,
    *,
    timeout: float = DEADLINE_S,
    terminal: bool = True,
    states: frozenset[str] | None = None,
) -> BackendJobStatus:
    last: list[BackendJobStatus] = []

    def reached() -> BackendJobStatus | None:
        st = backend.poll([handle])[handle]
        last[:] = [st]
        if states is not None:
            return st if st.state in states else None
        return st if terminal and st.state in TERMINAL_BACKEND_STATES else None

    try:
        return wait_for(reached, f"job {handle} to reach the wanted state", timeout, step=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last[0] if last else None}") from None


def sh(*argv: str, check: bool = True, timeout: float = DEADLINE_S) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr or proc.stdout}")
    return proc.stdout


def ensure_unix_user(name: str) -> None:
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        sh("useradd", "--no-create-home", "--shell", "/bin/bash", name)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> None:
    wait_for(pred, what, timeout, step)


@dataclass
class SlurmAccount:
    name: str
    user: str
    tmp: Path

    def add_user(self, user: str) -> None:
        ensure_unix_user(user)
        sh("sacctmgr", "-i", "add", "user", user, f"account={self.name}")

    def set_gpu_minutes(self, minutes: int | None) -> None:
        value = "-1" if minutes is None else str(minutes)
        sh("sacctmgr", "-i", "modify", "account", self.name, "set", f"GrpTRESMins=gres/gpu={value}")
