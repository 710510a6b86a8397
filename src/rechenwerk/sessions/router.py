"""REST API of interactive sessions (``/api/v1/sessions``): start, list, show, stop one's
own JupyterLab sessions. Thin: ``sessions.service`` decides. The session itself is
opened in the browser at its ``url`` (``web/jupyter_proxy.py``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from rechenwerk.api.deps import CurrentUser, DbSession, backend_of, get_clock, settings_of
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.service import project_slugs
from rechenwerk.sessions import service
from rechenwerk.sessions.service import SessionRequest

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])


class SessionOut(BaseModel):
    id: int
    name: str
    project: str
    state: str
    ready: bool  # JupyterLab has written its endpoint: open ``url`` in the browser
    url: str  # a path on this server (the portal's proxy)
    page: str  # the portal's page of the session (state, log, stop)
    gpus: int
    gpu_type: str | None
    walltime_s: int
    reason: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None

    @classmethod
    def of(cls, job: Job, project: str, *, ready: bool) -> SessionOut:
        return cls(id=job.id, name=job.name, project=project, state=job.state, ready=ready,
                   url=service.session_url(job), page=f"/sessions/{job.id}", gpus=job.gpus,
                   gpu_type=job.gpu_type, walltime_s=job.walltime_s, reason=job.reason,
                   submitted_at=job.submitted_at, started_at=job.started_at,
                   ended_at=job.ended_at, exit_code=job.exit_code)


def _out(request: Request, session: DbSession, jobs: list[Job]) -> list[SessionOut]:
    settings = settings_of(request)
    slugs = project_slugs(session, {j.project_id for j in jobs})
    out = []
    for job in jobs:
        ready = service.session_ready(job, settings, lambda: backend_of(request))
        out.append(SessionOut.of(job, slugs.get(job.project_id, "?"), ready=ready))
    return out


@router.post("", response_model=SessionOut, status_code=201,
             summary="Start a JupyterLab session as a job of one of your projects")
def start(request: Request, body: SessionRequest, session: DbSession,
          user: CurrentUser) -> SessionOut:
    job = service.start_session(session, user, body, clock=get_clock(request),
                                settings=settings_of(request))
    return _out(request, session, [job])[0]


@router.get("", response_model=list[SessionOut], summary="Your sessions, newest first")
def list_sessions(request: Request, session: DbSession, user: CurrentUser,
                  active: bool = Query(False, description="only those not yet ended"),
                  ) -> list[SessionOut]:
    return _out(request, session, service.list_sessions(session, user, active_only=active))


@router.get("/{session_id}", response_model=SessionOut, summary="One of your sessions")
def show(request: Request, session_id: int, session: DbSession,
         user: CurrentUser) -> SessionOut:
    return _out(request, session, [service.own_session(session, user, session_id)])[0]


@router.delete("/{session_id}", response_model=SessionOut,
               summary="Stop a session (it is charged until it has ended)")
def stop(request: Request, session_id: int, session: DbSession,
         user: CurrentUser) -> SessionOut:
    job = service.stop_session(session, user, session_id, clock=get_clock(request))
    return _out(request, session, [job])[0]
