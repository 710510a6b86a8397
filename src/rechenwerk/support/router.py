"""REST API of support requests (``/api/v1/support/requests``). Thin: parse, call
``support.service`` (which decides who may do what), shape the answer."""

from __future__ import annotations

from fastapi import APIRouter, Query

from rechenwerk.access import paging
from rechenwerk.access.schemas import PageOut, page_out
from rechenwerk.api.deps import CurrentUser, DbSession, Now
from rechenwerk.support import schemas as s
from rechenwerk.support import service

router = APIRouter(prefix="/api/v1/support", tags=["support"])

Limit = Query(50, ge=1, le=paging.MAX_LIMIT, description="page size")
Offset = Query(0, ge=0, description="items to skip")


def _thread_out(session: DbSession, user: CurrentUser, request_id: int) -> s.SupportRequestOut:
    t = service.thread(session, user, request_id)
    return s.SupportRequestOut.of(t.request, t.messages)


@router.get(
    "/requests",
    response_model=PageOut[s.SupportRequestOut],
    summary="Support requests I opened or of projects I am PI of (operators: all)",
)
def list_requests(
    session: DbSession,
    user: CurrentUser,
    state: str | None = Query(
        None, description="open, assigned, answered, closed, or active (all but closed)"
    ),
    kind: str | None = Query(None, description="onboarding, porting, data or other"),
    project: str | None = Query(None, description="slug or id"),
    assignee: str | None = Query(None, description="an operator's username, or none"),
    limit: int = Limit,
    offset: int = Offset,
) -> PageOut[s.SupportRequestOut]:
    page = service.list_requests(
        session,
        user,
        state=state,
        kind=kind,
        project=project,
        assignee=assignee,
        limit=limit,
        offset=offset,
    )
    return page_out(page, [s.SupportRequestOut.of(r) for r in page.items])


@router.post(
    "/requests",
    response_model=s.SupportRequestOut,
    status_code=201,
    summary="Open a support request for a project you are a member of",
)
def open_request(
    body: s.SupportOpen, session: DbSession, user: CurrentUser, now: Now
) -> s.SupportRequestOut:
    req = service.open_request(
        session,
        user,
        project=body.project,
        kind=body.kind,
        subject=body.subject,
        body=body.body,
        now=now,
    )
    return _thread_out(session, user, req.id)


@router.get(
    "/requests/{request_id}",
    response_model=s.SupportRequestOut,
    summary="A support request with its conversation",
)
def show_request(request_id: int, session: DbSession, user: CurrentUser) -> s.SupportRequestOut:
    return _thread_out(session, user, request_id)


@router.post(
    "/requests/{request_id}/replies",
    response_model=s.SupportRequestOut,
    status_code=201,
    summary="Reply (an operator's reply answers the request; the requester's reopens a closed one)",
)
def reply(
    request_id: int, body: s.SupportReply, session: DbSession, user: CurrentUser, now: Now
) -> s.SupportRequestOut:
    req = service.visible_request(session, user, request_id, lock=True)
    service.reply(session, user, req, body=body.body, now=now)
    return _thread_out(session, user, request_id)


@router.post(
    "/requests/{request_id}/assign",
    response_model=s.SupportRequestOut,
    summary="Assign to an operator (operators; default: yourself)",
)
def assign(
    request_id: int,
    session: DbSession,
    user: CurrentUser,
    now: Now,
    body: s.SupportAssign | None = None,
) -> s.SupportRequestOut:
    req = service.visible_request(session, user, request_id, lock=True)
    service.assign(session, user, req, assignee=body.assignee if body else None, now=now)
    return _thread_out(session, user, request_id)


@router.post(
    "/requests/{request_id}/close",
    response_model=s.SupportRequestOut,
    summary="Close, with an optional comment",
)
def close(
    request_id: int,
    session: DbSession,
    user: CurrentUser,
    now: Now,
    body: s.SupportClose | None = None,
) -> s.SupportRequestOut:
    req = service.visible_request(session, user, request_id, lock=True)
    service.close(session, user, req, comment=body.comment if body else "", now=now)
    return _thread_out(session, user, request_id)


@router.post(
    "/requests/{request_id}/reopen",
    response_model=s.SupportRequestOut,
    summary="Reopen a closed request",
)
def reopen(request_id: int, session: DbSession, user: CurrentUser, now: Now) -> s.SupportRequestOut:
    req = service.visible_request(session, user, request_id, lock=True)
    service.reopen(session, user, req, now=now)
    return _thread_out(session, user, request_id)
