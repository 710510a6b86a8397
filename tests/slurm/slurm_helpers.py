"""Small builders for the Slurm tests, and the dev clusters they run on.

Three clusters from ``scripts/slurm-dev``: the host's Slurm 22.05, Slurm 24.11 in a
Debian 13 root (``SLURM_DEV_RELEASE=24.11``) and Slurm 26.05 in a Debian forky root
(``SLURM_DEV_RELEASE=26.05``), the two reached through a command prefix
(``chroot <root>``, RECHENWERK_SLURM_COMMAND_PREFIX). The ``slurm_up`` fixture makes its
cluster the *active* one: ``sh``, ``ensure_unix_user``, ``cli()``, ``rest_jwt()``,
``slurm_settings()`` ... then talk to it."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rechenwerk.config import Settings
from rechenwerk.execution.base import (
    TERMINAL_BACKEND_STATES,
    BackendJobStatus,
    ExecutionBackend,
    LaunchRequest,
)
from rechenwerk.execution.slurm.cli_transport import CliTransport
from rechenwerk.execution.slurm.rest_transport import RestTransport
from waiting import DEADLINE_S, wait_for

SLURM_DEV = Path(__file__).resolve().parents[2] / "scripts" / "slurm-dev"
# what goes through a cluster's prefix (runuser: it then runs one of them)
_SLURM_COMMANDS = frozenset(
    {
        "sacct",
        "sacctmgr",
        "sbatch",
        "scancel",
        "scontrol",
        "sinfo",
        "squeue",
        "srun",
        "sshare",
        "sprio",
        "sdiag",
        "runuser",
    }
)


@dataclass(frozen=True)
class SlurmCluster:
    id: str  # the release, also the pytest id: "22.05", "24.11", "26.05"
    name: str  # ClusterName
    rest_unix: str
    rest_jwt: str
    nodes: tuple[str, ...]  # scripts/slurm-dev's node names
    root: str | None = None  # the Debian root it runs in; None: the host's own Slurm

    @property
    def prefix(self) -> tuple[str, ...]:
        return ("chroot", self.root) if self.root else ()

    @property
    def up_command(self) -> str:
        env = "" if self.root is None else f"SLURM_DEV_RELEASE={self.id} "
        return f"sudo {env}scripts/slurm-dev up"

    @property
    def ctld_pidfile(self) -> Path:
        return Path(f"{self.root or ''}/run/slurmctld.pid")

    def argv(self, *argv: str) -> list[str]:
        cmd = [a for a in argv if a != "env" and "=" not in a][:1]  # `env TZ=UTC scontrol`
        return [*self.prefix, *argv] if cmd and cmd[0] in _SLURM_COMMANDS else list(argv)

    def run(self, *argv: str, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout)

    def cli(self, **kw: Any) -> CliTransport:
        return CliTransport(command_prefix=self.prefix, **kw)

    def rest_transport(self, url: str, **kw: Any) -> RestTransport:
        return RestTransport(url, command_prefix=self.prefix, **kw)

    def settings_overrides(self) -> dict[str, Any]:
        """What a test's Settings need to reach this cluster."""
        return {"slurm_command_prefix": shlex.join(self.prefix), "slurm_rest_url": self.rest_unix}

    def env(self) -> dict[str, str]:
        """The same as RECHENWERK_* variables (for the CLI)."""
        return {f"RECHENWERK_{k.upper()}": v for k, v in self.settings_overrides().items()}

    def slurm_dev(self, *args: str, timeout: float = 600) -> None:
        env = {**os.environ, "SLURM_DEV_RELEASE": self.id}
        subprocess.run(
            [str(SLURM_DEV), *args], check=True, capture_output=True, timeout=timeout, env=env
        )

    def problem(self) -> str | None:
        """Why the tests cannot use this cluster (None: they can)."""
        if (
            self.root is None
            and subprocess.run(["which", "sinfo"], capture_output=True).returncode != 0
        ):
            return f"Slurm is not installed (no `sinfo`); run `{self.up_command}`"
        if self.root is not None and not Path(self.root, ".rechenwerk-root-ready").exists():
            return f"no Slurm {self.id} root at {self.root}; run `{self.up_command}`"
        if os.geteuid() != 0:
            return "the Slurm integration tests create Unix users and accounts: run them as root"
        try:
            proc = self.run("scontrol", "ping", timeout=15)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"Slurm {self.id}: `scontrol ping` failed ({exc}); run `{self.up_command}`"
        if "is UP" not in proc.stdout:
            return (
                f"the Slurm {self.id} cluster is not up (`scontrol ping`); run `{self.up_command}`"
            )
        return None


CLUSTERS: dict[str, SlurmCluster] = {
    "22.05": SlurmCluster(
        "22.05",
        "rechenwerk",
        "unix:/run/slurmrestd.sock",
        "http://127.0.0.1:6820",
        ("node1", "node2"),
    ),
    "24.11": SlurmCluster(
        "24.11",
        "rechenwerk2411",
        "unix:/var/lib/rechenwerk-slurm/24.11/run/slurmrestd.sock",
        "http://127.0.0.1:6821",
        ("n2411a", "n2411b"),
        root="/var/lib/rechenwerk-slurm/24.11",
    ),
    "26.05": SlurmCluster(
        "26.05",
        "rechenwerk2605",
        "unix:/var/lib/rechenwerk-slurm/26.05/run/slurmrestd.sock",
        "http://127.0.0.1:6831",
        ("n2605a", "n2605b"),
        root="/var/lib/rechenwerk-slurm/26.05",
    ),
}
_active: list[SlurmCluster] = [CLUSTERS["22.05"]]


def active() -> SlurmCluster:
    """The cluster of the test being run (``slurm_up``); 22.05 outside one."""
    return _active[-1]


@contextlib.contextmanager
def use_cluster(cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    _active.append(cluster)
    try:
        yield cluster
    finally:
        _active.pop()


def cli(**kw: Any) -> CliTransport:
    return active().cli(**kw)


def rest_jwt(**kw: Any) -> RestTransport:
    return active().rest_transport(active().rest_jwt, **kw)


def rest_unix(**kw: Any) -> RestTransport:
    return active().rest_transport(active().rest_unix, **kw)


def rest_formats() -> list[str]:
    """The data formats the active cluster's slurmrestd (unix socket) offers."""
    import httpx

    from rechenwerk.execution.slurm import versions

    sock = active().rest_unix.removeprefix("unix:")
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=DEADLINE_S) as c:
        return versions.offered_by_openapi(c.get("http://localhost/openapi/v3").json())


def slurm_settings(**kw: Any) -> Settings:
    """Settings for the active cluster (its command prefix and slurmrestd), plus ``kw``."""
    return Settings(**{**active().settings_overrides(), **kw})


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


def sh(
    *argv: str, check: bool = True, timeout: float = DEADLINE_S, cluster: SlurmCluster | None = None
) -> str:
    """Run a command; Slurm's commands (and ``runuser``) on ``cluster`` (default: the
    active one), through its prefix."""
    proc = (cluster or active()).run(*argv, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr or proc.stdout}")
    return proc.stdout


def ensure_unix_user(name: str, cluster: SlurmCluster | None = None) -> None:
    """A Unix user on the host and, for a cluster in a root, in the root too."""
    c = cluster or active()
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/bash", name],
            check=True,
            capture_output=True,
        )
    if (
        c.root
        and subprocess.run(["chroot", c.root, "id", name], capture_output=True).returncode != 0
    ):
        c.slurm_dev("sync-users", timeout=60)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> None:
    wait_for(pred, what, timeout, step)


@dataclass
class SlurmAccount:
    name: str
    user: str
    tmp: Path
    cluster: SlurmCluster = field(default_factory=active)

    @classmethod
    def create(cls, name: str, user: str, tmp: Path, cluster: SlurmCluster) -> SlurmAccount:
        """The account in the cluster's slurmdbd, with ``user`` and root associated."""
        sh(
            "sacctmgr",
            "-i",
            "add",
            "account",
            name,
            f"Description=rechenwerk test {name}",
            cluster=cluster,
        )
        acc = cls(name=name, user=user, tmp=tmp, cluster=cluster)
        acc.add_user(user)
        acc.add_user("root")
        return acc

    def add_user(self, user: str) -> None:
        ensure_unix_user(user, self.cluster)
        sh("sacctmgr", "-i", "add", "user", user, f"account={self.name}", cluster=self.cluster)

    def set_gpu_minutes(self, minutes: int | None) -> None:
        value = "-1" if minutes is None else str(minutes)
        sh(
            "sacctmgr",
            "-i",
            "modify",
            "account",
            self.name,
            "set",
            f"GrpTRESMins=gres/gpu={value}",
            cluster=self.cluster,
        )

    def delete(self) -> None:
        """Cancel the account's jobs, wait until they are gone, remove the account."""
        self.cluster.run("scancel", f"--account={self.name}")
        for _ in range(40):  # a job still completing only delays the delete below
            if not sh(
                "squeue",
                "-h",
                f"--account={self.name}",
                "-t",
                "PD,R,CG",
                "-o",
                "%A",
                check=False,
                cluster=self.cluster,
            ).strip():
                break
            time.sleep(0.25)
        self.cluster.run("sacctmgr", "-i", "delete", "account", self.name)
