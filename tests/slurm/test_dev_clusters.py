"""Each dev cluster (22.05 on the host, 24.11 and 26.05 in their Debian roots) as the fixtures see
it: its own cluster name and nodes, accounts made with sacctmgr, a plain ``sbatch`` as the
test user through the command prefix, squeue/sacct text, slurmrestd over the unix socket
and over TCP with a JWT from that cluster's ``scontrol token``."""

from __future__ import annotations

import httpx
import pytest
from slurm_helpers import SlurmAccount, SlurmCluster, active, sh, wait_until

from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


def test_the_cluster_is_the_one_the_fixture_names(slurm_up: SlurmCluster) -> None:
    assert active() is slurm_up
    config = sh("scontrol", "show", "config")
    assert f"ClusterName             = {slurm_up.name}\n" in config
    assert f"SLURM_VERSION           = {slurm_up.id}." in config
    nodes = sh("sinfo", "-h", "-N", "-o", "%N %G").split("\n")
    assert {line.split()[0] for line in nodes if line} == set(slurm_up.nodes)
    clusters = sh("sacctmgr", "-n", "-P", "show", "cluster", "format=cluster").split()
    assert slurm_up.name in clusters


def test_plain_sbatch_as_the_test_user_through_the_prefix(slurm_account: SlurmAccount) -> None:
    acc, tmp = slurm_account, slurm_account.tmp
    assoc = sh("sacctmgr", "-n", "-P", "show", "assoc", f"account={acc.name}", "format=user")
    assert set(assoc.split()) >= {acc.user, "root"}
    # chroot starts in "/" and ssh in $HOME: the job's directory and output are explicit
    job_id = sh(
        "runuser",
        "-u",
        acc.user,
        "--",
        "sbatch",
        "--parsable",
        f"--account={acc.name}",
        f"--chdir={tmp}",
        f"--output={tmp}/out-%j.txt",
        "--gres=gpu:2",
        "--time=5",
        "--wrap",
        'echo "$(id -un) $PWD $CUDA_VISIBLE_DEVICES $SLURM_CLUSTER_NAME"',
    ).strip()
    assert job_id.isdigit(), job_id
    wait_until(
        lambda: not sh("squeue", "-h", "-j", job_id, "-o", "%T", check=False).strip(),
        DEADLINE_S,
        f"job {job_id} to leave the queue",
    )
    wait_until(
        lambda: "COMPLETED" in sh("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"),
        DEADLINE_S,
        f"slurmdbd to record job {job_id}",
    )
    fields = (
        sh(
            "sacct",
            "-X",
            "-n",
            "-P",
            "-j",
            job_id,
            "-o",
            "User,Account,State,ExitCode,AllocTRES,Cluster",
        )
        .strip()
        .split("|")
    )
    user, account, state, exit_code, tres, cluster = fields
    assert (user, account, state, exit_code) == (acc.user, acc.name, "COMPLETED", "0:0")
    assert "gres/gpu=2" in tres and cluster == acc.cluster.name
    name, pwd, gpus, cluster_name = (tmp / f"out-{job_id}.txt").read_text().split()
    assert (name, pwd, cluster_name) == (acc.user, str(tmp), acc.cluster.name)
    assert len(set(gpus.split(","))) == 2 and set(gpus.split(",")) <= {"0", "1", "2", "3"}


def test_slurmrestd_socket_and_jwt(slurm_up: SlurmCluster) -> None:
    sock = slurm_up.rest_unix.removeprefix("unix:")
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://slurm") as c:
        spec = c.get("/openapi/v3")
    assert spec.status_code == 200 and any("/ping" in p for p in spec.json()["paths"])
    token = sh("scontrol", "token", "username=root", "lifespan=120").strip()
    assert token.startswith("SLURM_JWT=")
    with httpx.Client(base_url=slurm_up.rest_jwt) as c:
        assert c.get("/openapi/v3").status_code == 401  # no token
        ok = c.get(
            "/openapi/v3",
            headers={
                "X-SLURM-USER-NAME": "root",
                "X-SLURM-USER-TOKEN": token.removeprefix("SLURM_JWT="),
            },
        )
    assert ok.status_code == 200
