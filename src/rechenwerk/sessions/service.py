"""Interactive sessions: JupyterLab as a job of the user's project (docs/jobs.md,
"Interactive sessions").

A session is a job of kind ``jupyterlab`` whose command is the server's
(``sessions/jupyter_job.py``): it is queued, placed, charged and ended like any job, and
stopping it is cancelling it. Only its owner sees it through the proxy; everybody else,
operators included, gets "no such session" (404), so a session's URL does not even say
that it exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import Conflict, NotFound, RechenwerkError
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.job_files import UnsafeJobPath, open_dir_chain, open_job_file
from rechenwerk.jobs import service as jobs
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import MAX_GPUS, parse_spec
from rechenwerk.jobs.states import JobState
from rechenwerk.sessions.jupyter_job import INFO_NAME, SOCKET_NAME, base_url

KIND = "jupyterlab"
SESSION_MODULE = "rechenwerk.sessions.jupyter_job"
MAX_INFO_BYTES = 4096
LIST_LIMIT = 100
# Request bodies through the proxy (api/bounds.py): JupyterLab saves a notebook in one PUT
# and uploads files in 1 MiB chunks; a notebook with plots is easily several MiB.
SESSION_PROXY_PATH = r"^/jupyter/\d{1,10}/"
SESSION_MAX_BODY = 64 * 1024 * 1024


class SessionRequest(BaseModel):
    """What a user asks for: a project to charge, GPUs and a walltime."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=128)
    gpus: int = Field(default=1, ge=1, le=MAX_GPUS)
    walltime: str | int = "2h"
    gpu_type: str | None = None
    qos: str = "normal"
    name: str = Field(default="jupyterlab", min_length=1, max_length=128)
    # JupyterLab's root folder (absolute, on the compute node); None: the session job's
    # own folder, which stays after it ends
    workdir: str | None = Field(default=None, min_length=1, max_length=4096)


def jupyterlab_available() -> bool:
    return importlib.util.find_spec("jupyterlab") is not None


def session_command(settings: Settings) -> list[str]:
    """The session job's command: this server's Python (the local executor and the dev
    Slurm run on this machine) or the one the operator names for the compute nodes."""
    return [settings.session_python or sys.executable, "-m", SESSION_MODULE]


def start_session(db: Session, user: User, request: SessionRequest, *, clock: Clock,
                  settings: Settings) -> Job:
    if not settings.session_python and not jupyterlab_available():
        raise Conflict(
            "interactive sessions are not available here: JupyterLab is not installed",
            field="sessions",
            hint="An operator installs it with pip install 'rechenwerk[sessions]' (or sets "
                 "RECHENWERK_SESSION_PYTHON to a Python that has it on the compute nodes).")
    doc: dict[str, Any] = {
        "name": request.name, "project": request.project, "command": session_command(settings),
        "gpus": request.gpus, "walltime": request.walltime, "qos": request.qos,
    }
    if request.gpu_type:
        doc["gpu_type"] = request.gpu_type
    if request.workdir:
        doc["workdir"] = request.workdir
    spec = parse_spec(doc, source="session request")
    return jobs.submit_job(db, user, spec, clock=clock, settings=settings, kind=KIND).job


def own_session(db: Session, user: User, job_id: int) -> Job:
    """The user's own session ``job_id``; anything else is "no such session"."""
    job = db.get(Job, job_id)
    if job is None or job.kind != KIND or job.user_id != user.id:
        raise NotFound(f"no session {job_id}", field="session",
                       hint="rechenwerk session list shows your sessions.")
    return job


def list_sessions(db: Session, user: User, *, active_only: bool = False) -> list[Job]:
    stmt = select(Job).where(Job.user_id == user.id, Job.kind == KIND)
    if active_only:
        stmt = stmt.where(Job.state.in_([s.value for s in ACTIVE_OR_WAITING]))
    return list(db.scalars(stmt.order_by(Job.id.desc()).limit(LIST_LIMIT)))


def stop_session(db: Session, user: User, job_id: int, *, clock: Clock) -> Job:
    own_session(db, user, job_id)
    return jobs.cancel(db, user, job_id, clock=clock)


ACTIVE_OR_WAITING = (JobState.PENDING, JobState.STARTING, JobState.RUNNING,
                     JobState.PREEMPTED)


# --------------------------------------------------------------------------- endpoint


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a running session's JupyterLab listens, and its token. ``fd`` is an
    ``O_PATH`` descriptor of the socket (connect to ``/proc/self/fd/<fd>``): the socket
    the check saw, never a link a job swapped in after it. The caller closes it."""

    token: str
    fd: int | None = None
    host: str | None = None
    port: int | None = None

    @property
    def uds(self) -> str | None:
        return f"/proc/self/fd/{self.fd}" if self.fd is not None else None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}" if self.host else "http://localhost"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def answers(self, timeout_s: float = 2.0) -> bool:
        """JupyterLab accepts connections (it writes session.json just before it starts
        listening: "ready" is when this is true)."""
        try:
            if self.uds is not None:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout_s)
                    s.connect(self.uds)
            else:
                socket.create_connection((str(self.host), int(self.port or 0)),
                                         timeout=timeout_s).close()
        except OSError:
            return False
        return True


def session_ready(job: Job, settings: Settings, backend: BackendGetter | None = None) -> bool:
    """The session can be opened: its endpoint is there and answers."""
    endpoint = endpoint_of(job, settings, backend)
    if endpoint is None:
        return False
    try:
        return endpoint.answers()
    finally:
        endpoint.close()


def session_url(job: Job) -> str:
    return f"{base_url(job.id)}lab"


def _read_info(root: Path, parts: tuple[str, str]) -> dict[str, Any] | None:
    try:
        fd = open_job_file(root, parts, INFO_NAME)
    except (FileNotFoundError, NotADirectoryError, UnsafeJobPath):
        return None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_INFO_BYTES + 1)
    if len(raw) > MAX_INFO_BYTES:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    token = info.get("token") if isinstance(info, dict) else None
    return info if isinstance(token, str) and 16 <= len(token) <= 256 else None


def _open_socket(root: Path, parts: tuple[str, str]) -> int | None:
    try:
        with open_dir_chain(root, parts) as dir_fd:
            fd = os.open(SOCKET_NAME, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError, UnsafeJobPath):
        return None
    except OSError:  # ELOOP: a link planted in place of the socket
        return None
    st = os.fstat(fd)
    # a socket JupyterLab bound here (one name): not a hard link to someone else's
    if not stat.S_ISSOCK(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        return None
    return fd


# The nodes of a session's run as its backend reports them (Slurm places jobs itself):
# asked once per run, they do not change while it runs.
_RUN_NODES: dict[tuple[int, int, str], tuple[str, ...]] = {}
_RUN_NODES_MAX = 4096


BackendGetter = Callable[[], ExecutionBackend]


def run_nodes(job: Job, backend: BackendGetter | None) -> tuple[str, ...]:
    """The nodes ``job``'s current run holds: its placement (the local executor), else
    what the backend says (cached per run; the backend is built only then)."""
    if job.placement:
        return tuple(str(p[0]) for p in job.placement if p)
    if backend is None or not job.backend_handle:
        return ()
    # the backend's handle too: a run of that job id in another database (a restore, a
    # test) must not answer for this one
    key = (job.id, job.attempt, job.backend_handle)
    if key not in _RUN_NODES:
        try:
            status = backend().poll([job.backend_handle]).get(job.backend_handle)
        except RechenwerkError:
            return ()
        if status is None or not status.nodes:
            return ()
        if len(_RUN_NODES) >= _RUN_NODES_MAX:
            _RUN_NODES.clear()
        _RUN_NODES[key] = tuple(status.nodes)
    return _RUN_NODES[key]


def endpoint_of(job: Job, settings: Settings,
                backend: BackendGetter | None = None) -> Endpoint | None:
    """The running session's endpoint, or None while JupyterLab has not written it (or
    what is there is not trustworthy: a link, a bad file, a node not the job's own)."""
    if job.kind != KIND or job.state != JobState.RUNNING.value or job.attempt < 1:
        return None
    root = Path(settings.data_dir) / "logs"
    parts = (str(job.id), str(job.attempt))
    info = _read_info(root, parts)
    if info is None:
        return None
    token = str(info["token"])
    if "port" in info:
        node, port = info.get("node"), info.get("port")
        if (not isinstance(node, str) or not isinstance(port, int) or isinstance(port, bool)
                or not 1024 <= port <= 65535 or node not in run_nodes(job, backend)):
            return None
        return Endpoint(token=token, host=settings.session_node_host.format(node=node),
                        port=port)
    fd = _open_socket(root, parts)
    return Endpoint(token=token, fd=fd) if fd is not None else None
