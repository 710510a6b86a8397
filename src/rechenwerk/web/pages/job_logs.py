"""A job's logs in the portal: the chunks the job page's follower appends while the job
runs (``static/log-follow.js``) and the whole log as a download. Reading is
``jobs.logs``' (the job's authorisation, links in the job's folder never followed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rechenwerk.access.models import User
from rechenwerk.api.deps import get_session, settings_of
from rechenwerk.jobs.logs import open_whole_log, read_log
from rechenwerk.web.deps import portal_user
from rechenwerk.web.routing import PortalRoute

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

FOLLOW_CHUNK = 256 * 1024  # per poll: a fast writer is caught up over a few polls
DOWNLOAD_CHUNK = 1 << 20


@router.get("/jobs/{job_id}/log/{stream}")
def log_chunk(
    request: Request, job_id: int, stream: Literal["stdout", "stderr"],
    offset: int = Query(0, ge=0), attempt: int | None = Query(None, ge=1),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
) -> Response:
    chunk = read_log(db, user, job_id, data_dir=Path(settings_of(request).data_dir),
                     stream=stream, offset=offset, attempt=attempt, limit=FOLLOW_CHUNK)
    data: dict[str, Any] = chunk.to_dict()
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/jobs/{job_id}/log/{stream}/download")
def log_download(
    request: Request, job_id: int, stream: Literal["stdout", "stderr"],
    attempt: int | None = Query(None, ge=1),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
) -> Response:
    fh, filename = open_whole_log(db, user, job_id, data_dir=Path(settings_of(request).data_dir),
                                  stream=stream, attempt=attempt)

    def chunks() -> Iterator[bytes]:
        with fh:
            while block := fh.read(DOWNLOAD_CHUNK):
                yield block

    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})
