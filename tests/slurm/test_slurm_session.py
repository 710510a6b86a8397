"""An interactive session on real Slurm: JupyterLab runs as the user's Slurm job on the
allocated node, listens on a TCP port of that node with its token, and the server finds
it from the run's session.json only on the job's own node; stopping it cancels the job."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from slurm_helpers import (
    SlurmCluster,
    active,
    cli,
    ensure_unix_user,
    sh,
    slurm_settings,
    wait_until,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from jupyter_messages import evaluate
from portal_login import login, password_hash
from rechenwerk.access.models import User
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.clock import WallClock
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.sessions import service as sessions
from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]
USER = "rwtest"
SRC = Path(__file__).resolve().parents[2] / "src"
VENV = Path("/tmp/rechenwerk-session-venv")


@pytest.fixture(scope="module")
def node_python() -> str:
    """A Python with JupyterLab that the job's Unix account can run, as a centre installs
    one on its nodes (the server's own lives under /root, closed to job accounts):
    Debian's python3 in a venv, with Rechenwerk's source on its path."""
    python = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        subprocess.run(["rm", "-rf", str(VENV)], check=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "jupyterlab>=4.2"],
                       check=True, timeout=900)
        site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "rechenwerk-src.pth").write_text(f"{SRC}\n")
        subprocess.run(["chmod", "-R", "a+rX", str(VENV)], check=True)
        (VENV / ".ready").touch()
    return str(python)


@pytest.fixture
def project(slurm_up: SlurmCluster, session_factory: sessionmaker[Session]
            ) -> Iterator[tuple[str, Path]]:
    if slurm_up.root is not None:
        pytest.skip(f"Slurm {slurm_up.id} runs jobs in its Debian root, which has no Python "
                    "with JupyterLab (a centre names its nodes' one: RECHENWERK_SESSION_PYTHON)")
    ensure_unix_user(USER)
    slug = f"rws{uuid.uuid4().hex[:10]}"
    data = Path(f"/tmp/{slug}-data")
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    with session_factory() as s:
        pi = make_user(s, username=USER, password_hash=password_hash())
        make_award(s, make_project(s, pi=pi, slug=slug),
                   gpu_hours=100.0, starts_at=datetime.now(UTC) - timedelta(days=1))
        s.commit()
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    try:
        yield slug, data
    finally:
        active().run("scancel", f"--account={slug}")
        wait_until(lambda: not sh("squeue", "-h", f"--account={slug}", "-o", "%A",
                                  check=False).strip(), DEADLINE_S, "the session to leave")
        active().run("sacctmgr", "-i", "delete", "account", slug)
        subprocess.run(["rm", "-rf", str(data)])


def test_session_runs_on_the_allocated_node_and_is_reached_there(
    project: tuple[str, Path], node_python: str, session_factory: sessionmaker[Session],
) -> None:
    slug, data = project
    settings = slurm_settings(data_dir=data, executor="slurm", scheduler_interval_s=0.2,
                              session_python=node_python,
                              session_node_host="127.0.0.1")  # all dev nodes are this host
    with session_factory() as s:
        user = s.scalars(select(User).where(User.username == USER)).one()
        job = sessions.start_session(s, user, sessions.SessionRequest(
            project=slug, gpus=1, walltime="10m"), clock=WallClock(), settings=settings)
        s.commit()
        sid = job.id
    backend = SlurmBackend(cli())
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=WallClock())
    found: dict[str, object] = {}
    try:
        def reachable() -> bool:
            loop.cycle()
            with session_factory() as s:
                j = s.get(Job, sid)
                assert j is not None and j.state in ("pending", "starting", "running"), (
                    j and (j.state, j.reason))
                endpoint = sessions.endpoint_of(j, settings, lambda: backend)
                if endpoint is None or not endpoint.answers():
                    return False
                found.update(host=endpoint.host, port=endpoint.port, token=endpoint.token,
                             attempt=j.attempt)
                return True

        wait_until(reachable, DEADLINE_S, "JupyterLab to start in the Slurm job", step=0.5)
        base = f"http://{found['host']}:{found['port']}/jupyter/{sid}"
        status = httpx.get(f"{base}/api/status", timeout=30,
                           headers={"Authorization": f"token {found['token']}"})
        assert status.status_code == 200 and "started" in status.json()
        # without the token JupyterLab refuses: the port is no way in
        assert httpx.get(f"{base}/api/status", timeout=30).status_code == 403
        # through the portal's proxy, as the owner's browser reaches it
        from fastapi.testclient import TestClient

        from rechenwerk.app import create_app

        portal = TestClient(create_app(settings, session_factory=session_factory,
                                       backend=backend))
        login(portal, USER)
        proxied = portal.get(f"/jupyter/{sid}/api/status")
        assert proxied.status_code == 200 and "started" in proxied.json(), proxied.text
        lab = portal.get(f"/jupyter/{sid}/lab")
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        kernel = portal.post(f"/jupyter/{sid}/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        with portal.websocket_connect(
                f"/jupyter/{sid}/api/kernels/{kernel.json()['id']}/channels",
                headers={"Origin": "http://testserver"}) as ws:
            printed = evaluate(ws.send_text, ws.receive_text, "os.environ['SLURM_JOB_ID']")
        assert printed.isdigit(), printed
        info_path = data / "logs" / str(sid) / str(found["attempt"]) / "session.json"
        info = json.loads(info_path.read_text())
        with session_factory() as s:
            j = s.get(Job, sid)
            assert j is not None
            assert info["node"] in sessions.run_nodes(j, lambda: backend)
            # a session.json naming a node that is not the job's own is not followed
            info_path.write_text(json.dumps({**info, "node": "elsewhere"}))
            assert sessions.endpoint_of(j, settings, lambda: backend) is None
        with session_factory() as s:
            user = s.scalars(select(User).where(User.username == USER)).one()
            sessions.stop_session(s, user, sid, clock=WallClock())
            s.commit()

        def ended() -> bool:
            loop.cycle()
            with session_factory() as s:
                j = s.get(Job, sid)
                return j is not None and j.state == "cancelled"

        wait_until(ended, DEADLINE_S, "the stopped session to end", step=0.5)
    finally:
        backend.close()
