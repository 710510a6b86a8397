"""The Slurm backend against the real daemons: GPU jobs to completion, multi-node via
srun, cancel, exit codes, and both transports (CLI and slurmrestd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slurm_helpers import SlurmAccount, SlurmCluster, cli, request, rest_jwt, rest_unix, wait_state

from rechenwerk.execution.base import BackendJobState, ExecutionBackend
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.execution.slurm.rest_transport import RestTransport

# one xdist group: these tests share one cluster and some stop daemons
pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]

TRANSPORTS = ["cli", "rest-unix", "rest-jwt"]


def make_backend(kind: str) -> SlurmBackend:
    if kind == "cli":
        return SlurmBackend(cli())
    if kind == "rest-unix":
        # rest_auth/local: jobs run as slurmrestd's uid, so submit as the service
        return SlurmBackend(rest_unix(), submit_as_user=False)
    return SlurmBackend(rest_jwt())


@pytest.fixture(params=TRANSPORTS)
def backend(request: pytest.FixtureRequest, slurm_up: SlurmCluster) -> Iterator[SlurmBackend]:
    b = make_backend(request.param)
    yield b
    b.close()


def test_one_gpu_job_runs_to_completion(backend: SlurmBackend, slurm_account: SlurmAccount) -> None:
    req = request(
        slurm_account.name,
        slurm_account.user,
        slurm_account.tmp,
        command=(
            "bash",
            "-c",
            'echo "gpus=$CUDA_VISIBLE_DEVICES user=$(id -un) rw=$RECHENWERK_JOB_ID"',
        ),
        job_id="101",
    )
    handle = backend.submit(req)
    assert handle.isdigit()
    st = wait_state(backend, handle)
    assert st.state is BackendJobState.COMPLETED, st
    assert st.exit_code == 0
    assert st.allocated_gpus == 1
    assert st.account == slurm_account.name
    assert st.started_at is not None and st.ended_at is not None
    assert st.started_at <= st.ended_at
    out = (slurm_account.tmp / "logs-101" / "stdout.log").read_text()
    expected_user = (
        "root"
        if isinstance(backend.transport, RestTransport) and not backend.transport.jwt
        else slurm_account.user
    )
    gpus, user, job = out.split()
    assert gpus in ("gpus=0", "gpus=1", "gpus=2", "gpus=3")  # any free GPU of the node
    assert (user, job) == (f"user={expected_user}", "rw=101")


def test_two_nodes_two_gpus_each_via_srun(slurm_account: SlurmAccount) -> None:
    backend = make_backend("cli")
    req = request(
        slurm_account.name,
        slurm_account.user,
        slurm_account.tmp,
        command=("bash", "-c", 'echo "$SLURMD_NODENAME:$CUDA_VISIBLE_DEVICES"'),
        nodes=2,
        gpus_per_node=2,
        job_id="102",
    )
    handle = backend.submit(req)
    st = wait_state(backend, handle)
    assert st.state is BackendJobState.COMPLETED, st
    assert st.allocated_gpus == 4
    assert len(st.nodes) == 2
    lines = sorted((slurm_account.tmp / "logs-102" / "stdout.log").read_text().split())
    assert [line.split(":")[0] for line in lines] == sorted(st.nodes)
    assert all(line.split(":")[1] in ("0,1", "1,2", "2,3", "0,2", "0,3", "1,3") for line in lines)


def test_multi_node_job_sees_the_same_rendezvous_variables_as_locally(
        slurm_account: SlurmAccount) -> None:
    """NODE_RANK/NNODES/MASTER_ADDR/MASTER_PORT and the RECHENWERK_* per-node variables,
    as the local executor sets them, so a torchrun recipe runs unchanged on Slurm."""
    backend = make_backend("cli")
    show = ('echo "$NODE_RANK $RECHENWERK_NODE_RANK $NNODES $RECHENWERK_NUM_NODES '
            '$MASTER_ADDR $MASTER_PORT $RECHENWERK_GPUS_PER_NODE $RECHENWERK_NODE_NAME '
            '$SLURMD_NODENAME"')
    req = request(slurm_account.name, slurm_account.user, slurm_account.tmp,
                  command=("bash", "-c", show), nodes=2, gpus_per_node=2, job_id="107",
                  env={"MASTER_PORT": "1"})  # Rechenwerk's value wins, as locally
    handle = backend.submit(req)
    st = wait_state(backend, handle)
    assert st.state is BackendJobState.COMPLETED, st
    rows = sorted(line.split() for line in
                  (slurm_account.tmp / "logs-107" / "stdout.log").read_text().splitlines())
    assert [r[0] for r in rows] == ["0", "1"] and all(r[0] == r[1] for r in rows)
    assert {(r[2], r[3], r[6]) for r in rows} == {("2", "2", "2")}
    assert len({(r[4], r[5]) for r in rows}) == 1  # one rendezvous host and port
    assert int(rows[0][5]) == 20000 + int(handle.split(":")[-1]) % 20000
    assert all(r[7] == r[8] for r in rows) and {r[7] for r in rows} == set(st.nodes)


def test_cancel_and_failure_exit_code(backend: SlurmBackend, slurm_account: SlurmAccount) -> None:
    acc = slurm_account
    long = backend.submit(
        request(acc.name, acc.user, acc.tmp, command=("sleep", "300"), job_id="103")
    )
    failing = backend.submit(
        request(acc.name, acc.user, acc.tmp, command=("bash", "-c", "exit 3"), job_id="104")
    )
    wait_state(backend, long, states=frozenset({BackendJobState.RUNNING}))
    backend.cancel(long)
    backend.cancel(long)  # idempotent
    st = wait_state(backend, long)
    assert st.state is BackendJobState.CANCELLED
    st = wait_state(backend, failing)
    assert st.state is BackendJobState.FAILED
    assert st.exit_code == 3


def test_unknown_handle_and_reconcile(slurm_account: SlurmAccount) -> None:
    backend: ExecutionBackend = make_backend("cli")
    acc = slurm_account
    h = backend.submit(request(acc.name, acc.user, acc.tmp, command=("true",), job_id="105"))
    wait_state(backend, h)
    report = backend.reconcile([h, "999999999"])
    assert report.known[h].state is BackendJobState.COMPLETED
    assert report.known["999999999"].state is BackendJobState.UNKNOWN
    assert all(f.handle != h for f in report.foreign)


def test_rejected_job_names_the_reason(slurm_account: SlurmAccount) -> None:
    from rechenwerk.errors import BackendError

    backend = make_backend("cli")
    acc = slurm_account
    with pytest.raises(BackendError) as exc:
        backend.submit(request("rwt-no-such-account", acc.user, acc.tmp, job_id="106"))
    assert "account" in exc.value.message.lower()
    with pytest.raises(BackendError) as exc:
        backend.submit(request(acc.name, acc.user, acc.tmp, gpus_per_node=64, job_id="107"))
    assert "not available" in exc.value.message


@pytest.mark.parametrize("transport", ["cli", "rest-jwt"])
def test_container_image_runs_through_the_configured_wrapper(
        transport: str, slurm_account: SlurmAccount) -> None:
    """No container engine here: the wrapper is env(1), which shows that the real batch
    script starts the program through the operator's command with the job's image."""
    from dataclasses import replace

    base = make_backend(transport)
    backend = SlurmBackend(base.transport, container_runtime="/usr/bin/env RW_IMAGE={image}")
    req = replace(request(slurm_account.name, slurm_account.user, slurm_account.tmp,
                          command=("bash", "-c", 'echo "image=$RW_IMAGE"'), job_id="131"),
                  container_image="docker://nvcr.io/nvidia/pytorch:24.05-py3")
    try:
        st = wait_state(backend, backend.submit(req))
        assert st.state is BackendJobState.COMPLETED, st
        out = (slurm_account.tmp / "logs-131" / "stdout.log").read_text()
        assert out.strip() == "image=docker://nvcr.io/nvidia/pytorch:24.05-py3"
    finally:
        backend.close()
