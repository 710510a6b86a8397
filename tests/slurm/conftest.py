"""Fixtures for tests against the real daemons of ``scripts/slurm-dev up``.

Every test here is marked ``slurm`` and put in one xdist group (they share the clusters
and some stop daemons). Tests that use ``slurm_up`` (directly or through ``test_user`` /
``slurm_account``) run once per dev cluster, ids ``22.05`` (the host's Slurm), ``24.11``
(``SLURM_DEV_RELEASE=24.11 scripts/slurm-dev up``, a Debian 13 root reached through
``chroot``) and ``26.05`` (the same from Debian forky); a cluster that is not up skips
with a clear message. Each test gets
its own account (``rwt<hex>``) and Unix user; their jobs are cancelled afterwards.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import CLUSTERS, SlurmAccount, SlurmCluster, ensure_unix_user, use_cluster


def _cluster_problem(cluster: SlurmCluster) -> str | None:
    return cluster.problem()


@pytest.fixture(autouse=True)
def _one_slurm_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Slurm tests share the clusters and some stop daemons: never run two at once, even
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


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_job_output_in_the_checkout(request: pytest.FixtureRequest) -> Iterator[None]:
    """A job submitted without --output from the checkout writes slurm-<id>.out into it
    (two were once committed): name the test that does so."""
    before = set(REPO.glob("slurm-*.out"))
    yield
    if request.node.get_closest_marker("slurm") is not None:
        new = sorted(p.name for p in set(REPO.glob("slurm-*.out")) - before)
        assert not new, (
            f"{new} appeared in the checkout during this test: a job submitted "
            "from it without --output (give it --output or --chdir)"
        )


@pytest.fixture(scope="session", params=list(CLUSTERS))
def slurm_cluster(request: pytest.FixtureRequest) -> SlurmCluster:
    """One dev cluster per parameter (checked once per session); skips when it is not up."""
    cluster = CLUSTERS[request.param]
    problem = _cluster_problem(cluster)
    if problem:
        pytest.skip(problem)
    return cluster


@pytest.fixture
def slurm_up(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The test's cluster, made the active one for ``sh``, ``cli()``, ``slurm_settings()``."""
    with use_cluster(slurm_cluster):
        yield slurm_cluster


@pytest.fixture(scope="session")
def test_user(slurm_cluster: SlurmCluster) -> str:
    name = "rwtest"
    ensure_unix_user(name, slurm_cluster)
    return name


@pytest.fixture
def slurm_account(slurm_up: SlurmCluster, test_user: str) -> Iterator[SlurmAccount]:
    name = f"rwt{uuid.uuid4().hex[:10]}"
    # pytest's tmp_path lives under a 0700 directory; jobs run as another user.
    tmp_path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    tmp_path.chmod(0o777)
    acc = SlurmAccount.create(name, test_user, tmp_path, slurm_up)
    try:
        yield acc
    finally:
        acc.delete()
        shutil.rmtree(tmp_path, ignore_errors=True)
