"""The REST transport against a real Slurm 24.11 slurmrestd (TCP, rest_auth/jwt), the
second dev cluster of ``SLURM_DEV_RELEASE=24.11 scripts/slurm-dev up``: format probing,
submit, poll, cancel, accounting and slurmdbd reads, for the probed format (v0.0.42) and
the two older ones 24.11 still offers. Skips when that cluster is not up."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rechenwerk.execution.slurm.rest_transport import RestTransport
from rechenwerk.execution.slurm.types import SlurmJob, SubmitSpec

pytestmark = pytest.mark.slurm

ROOT = Path("/var/lib/rechenwerk-slurm/24.11")
URL = "http://127.0.0.1:6821"
DEADLINE_S = 120.0


def _problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (chroot into the 24.11 root for `scontrol token`)"
    if not (ROOT / "usr/bin/scontrol").exists():
        return f"no Slurm 24.11 root at {ROOT} (SLURM_DEV_RELEASE=24.11 scripts/slurm-dev up)"
    try:
        httpx.get(f"{URL}/openapi/v3", timeout=5)
    except httpx.HTTPError as exc:
        return f"24.11 slurmrestd at {URL} unreachable ({type(exc).__name__})"
    return None


@pytest.fixture(scope="module")
def token() -> str:
    problem = _problem()
    if problem:
        pytest.skip(problem)
    out = subprocess.run(
        ["chroot", str(ROOT), "scontrol", "token", "username=root", "lifespan=1800"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert out.startswith("SLURM_JWT="), out
    return out.removeprefix("SLURM_JWT=")


@pytest.fixture(params=[None, "v0.0.41", "v0.0.40"], ids=["probed", "v0.0.41", "v0.0.40"])
def transport(request: pytest.FixtureRequest, token: str) -> Iterator[RestTransport]:
    t = RestTransport(URL, token=token, token_user="root", api_version=request.param)
    submitted: list[str] = []
    submit = t.submit

    def tracked(spec: SubmitSpec) -> str:
        job_id = submit(spec)
        submitted.append(job_id)
        return job_id

    t.submit = tracked  # type: ignore[method-assign]
    yield t
    for job_id in submitted:
        t.cancel(job_id)
    t.close()


def _spec(script: str, *, gpus: int = 0) -> SubmitSpec:
    tag = uuid.uuid4().hex[:8]
    return SubmitSpec(
        script=f"#!/bin/sh\n{script}\n",
        name=f"rwp-{tag}",
        account="root",
        partition="debug",
        time_limit_min=2,
        nodes=1,
        gpus_per_node=gpus,
        gpu_type="a100" if gpus else None,
        workdir="/tmp",
        stdout=f"/tmp/rwparsers-{tag}.out",
        stderr=f"/tmp/rwparsers-{tag}.out",
        environment={"PATH": "/usr/bin:/bin", "RW_TAG": tag},
        comment=f"rwp {tag}",
    )


def _until(what: str, probe: Callable[[], SlurmJob | None]) -> SlurmJob:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _live(t: RestTransport, job_id: str, state: str) -> Callable[[], SlurmJob | None]:
    return lambda: next((j for j in t.live_jobs() if j.job_id == job_id and j.state == state), None)


def _accounted(t: RestTransport, job_id: str, state: str) -> Callable[[], SlurmJob | None]:
    return lambda: next((j for j in t.accounted_jobs(job_ids=[job_id]) if j.state == state), None)


def test_probe_ping_and_slurmdbd(transport: RestTransport, request: pytest.FixtureRequest) -> None:
    transport.ping()
    # unpinned: the newest format that 24.11's slurmrestd and Rechenwerk share
    wanted = request.node.callspec.params["transport"] or "v0.0.42"
    assert wanted == transport.schema.VERSION
    assert "root" in transport.accounts(["root", "rwp-no-such-account"])
    assert transport.accounts(["root"])["root"].users >= {"root"}
    assert "normal" in transport.qos_priorities()
    assert transport._cluster_name() == "rechenwerk2411"


def test_submit_poll_cancel_and_account(transport: RestTransport) -> None:
    spec = _spec("sleep 120", gpus=1)
    job_id = transport.submit(spec)
    running = _until("the job to run", _live(transport, job_id, "RUNNING"))
    assert (running.name, running.gpus, running.account) == (spec.name, 1, "root")
    transport.cancel(job_id)
    done = _until("the cancel in slurmdbd", _accounted(transport, job_id, "CANCELLED"))
    assert done.end_time is not None and done.gpus == 1
    transport.cancel(job_id)  # cancelling a finished job again is not an error

    failing = _spec('test "$RW_TAG" = "${SLURM_JOB_NAME#rwp-}" && exit 3')
    job_id = transport.submit(failing)
    failed = _until("the failure in slurmdbd", _accounted(transport, job_id, "FAILED"))
    assert failed.exit_code == 3  # the environment list arrived (RW_TAG set)
    assert failed.comment == failing.comment and failed.start_time is not None
    assert transport.accounted_jobs(job_ids=["999999"]) == []
