"""Fixtures for tests against the real Slurm daemons of ``scripts/slurm-dev up``.

Every test here is marked ``slurm`` and put in one xdist group (they share one cluster
and some stop daemons). They skip with a clear message when Slurm is absent. Each test
gets its own account (``rwt<hex>``) and Unix user; their jobs are cancelled afterwards.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import SlurmAccount, ensure_unix_user, sh

REPO = Path(__file__).resolve().parents[2]
SLURM_DEV = REPO / "scripts" / "slurm-dev"


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (no `sinfo`); run `sudo scripts/slurm-dev up`"
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`scontrol ping` failed ({exc}); run `sudo scripts/slurm-dev up`"
    if "is UP" not in proc.stdout:
        return "the Slurm cluster is not up (`scontrol ping`); run `sudo scripts/slurm-dev up`"
    if os.geteuid() != 0:
        return "the Slurm integration tests create Unix users and accounts: run them as root"
    return None


@pytest.fixture(autouse=True)
def _one_slurm_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Slurm tests share one cluster and some stop daemons: never run two at once, even
    when xdist puts them on different workers (the xdist_group marks are not honoured by
    every xdist version)."""
    if request.node.get_closest_marker("slurm") is None:
        yield
        return
    with open("/tmp/rechenwerk-slurm-tests.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def slurm_up() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def test_user(slurm_up: None) -> str:
    name = "rwtest"
    ensure_unix_user(name)
    return name


@pytest.fixture
def slurm_account(slurm_up: None, test_user: str) -> Iterator[SlurmAccount]:
    name = f"rwt{uuid.uuid4().hex[:10]}"
    sh("sacctmgr", "-i", "add", "account", name, f"Description=rechenwerk test {name}")
    sh("sacctmgr", "-i", "add", "user", test_user, f"account={name}")
    sh("sacctmgr", "-i", "add", "user", "root", f"account={name}")
    # pytest's tmp_path lives under a 0700 directory; jobs run as another user.
    tmp_path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    tmp_path.chmod(0o777)
    try:
        yield SlurmAccount(name=name, user=test_user, tmp=tmp_path)
    finally:
        subprocess.run(["scancel", f"--account={name}"], capture_output=True)
        for _ in range(40):
            left = sh("squeue", "-h", f"--account={name}", "-t", "PD,R,CG", "-o", "%A", check=False)
            if not left.strip():
                break
            time.sleep(0.25)
        subprocess.run(["sacctmgr", "-i", "delete", "account", name], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)
