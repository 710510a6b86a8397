"""GPU use against the real dev cluster: its GPUs are fake and record no gres/gpuutil, so
a finished job's accounting reads without error and says "not measured" (None), through
the CLI's sacct step query and slurmdbd's REST records alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slurm_helpers import SlurmAccount, SlurmCluster, request, wait_state

from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.slurm.backend import SlurmBackend
from rechenwerk.execution.slurm.cli_transport import CliTransport
from rechenwerk.execution.slurm.types import SlurmJob
from waiting import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


@pytest.fixture(params=["cli", "rest-unix"])
def backend(request: pytest.FixtureRequest, slurm_up: SlurmCluster) -> Iterator[SlurmBackend]:
    if request.param == "cli":
        b = SlurmBackend(slurm_up.cli())
    else:  # rest_auth/local: jobs run as slurmrestd's uid, so submit as the service
        b = SlurmBackend(slurm_up.rest_transport(slurm_up.rest_unix), submit_as_user=False)
    yield b
    b.close()


def test_finished_job_without_gpu_tres_is_not_measured(
    backend: SlurmBackend, slurm_account: SlurmAccount
) -> None:
    req = request(
        slurm_account.name, slurm_account.user, slurm_account.tmp, command=("true",), job_id="4242"
    )
    handle = backend.submit(req)
    st = wait_state(backend, handle)
    assert st.state is BackendJobState.COMPLETED, st

    def accounted() -> SlurmJob | None:
        jobs = backend.transport.accounted_jobs(job_ids=[handle])
        return next((j for j in jobs if j.job_id == handle and j.end_time), None)

    job = wait_for(accounted, f"slurmdbd to record job {handle}")
    assert job.gpu_use is None
    transport = backend.transport
    if isinstance(transport, CliTransport):
        # the step query itself ran on real sacct output: the batch step with its GPU
        batch = wait_for(
            lambda: next(
                (
                    s
                    for s in transport._step_usage(["-X", f"--jobs={handle}"]).get(handle, [])
                    if s.step_id.endswith(".batch")
                ),
                None,
            ),
            f"the batch step of {handle} in sacct",
        )
        assert batch.gpus == 1 and batch.tasks == 1
        assert "gres/gpuutil" not in batch.usage_ave
