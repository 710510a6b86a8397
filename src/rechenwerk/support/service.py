"""Support requests: who may open, see and act on them, their states, their mails.

States (``SupportState``)::

    open ──assign──> assigned ──operator reply──> answered ──requester reply──> assigned
      │                                                                    (open if nobody
      └──operator reply──> answered                                          is assigned)
    any state but closed ──close──> closed ──reopen, or a requester reply──> assigned/open

- *open*: waiting for an operator, nobody assigned; *assigned*: waiting for the assigned
  operator; *answered*: an operator replied, waiting for the requester; *closed*.
- A reply by an operator (who is not the requester) is an answer; a reply by the
  requester or a PI of the project puts the request back with the operators.

Visibility (one rule, :func:`can_see`): the requester, the PIs of the request's project
(its PI and members in the PI role: they answer for the project's use of the centre) and
operators. Everyone else gets NotFound, so a request's existence does not leak. Only
members of a project (any role) may open a request for it.

Every change is an audit entry (entity ``support_request``) in the same transaction, and
every mail is queued in the outbox in that transaction too (``notifications.service``):

- a new request -> every active operator; a reply by the requester's side -> the
  assignee, or every operator while nobody is assigned;
- an assignment -> the new assignee (unless they assigned themselves);
- an answer -> the requester; a close -> the requester (unless they closed it), and the
  assignee when someone else closed it.

Functions take ``session`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Project, ProjectMembership, ProjectRole, User
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import get_project, membership, visible_project
from rechenwerk.access.security import require_operator
from rechenwerk.access.users import get_user
from rechenwerk.access.validation import check_choice
from rechenwerk.errors import (
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    raise_issues,
)
from rechenwerk.notifications.service import enqueue
from rechenwerk.support.models import (
    KIND_LABELS,
    SupportKind,
    SupportMessage,
    SupportRequest,
    SupportState,
)

KINDS: tuple[str, ...] = tuple(k.value for k in SupportKind)
STATES: tuple[str, ...] = tuple(s.value for s in SupportState)
SUBJECT_MAX = 200
BODY_MAX = 20_000
ENTITY = "support_request"
_SIGNATURE = (
    "\n\n-- \nRechenwerk support (reply in the portal under Support, or with "
    "`rechenwerk support reply`)"
)


@dataclass(frozen=True, slots=True)
class Thread:
    """A request with its conversation, oldest message first."""

    request: SupportRequest
    messages: list[SupportMessage]


# --------------------------------------------------------------------------- visibility


def _pi_project_ids(user: User) -> Select[int]:
    """Projects ``user`` is a PI of (the project's PI, or a member in the PI role)."""
    return select(Project.id).where(
        or_(
            Project.pi_user_id == user.id,
            Project.id.in_(
                select(ProjectMembership.project_id).where(
                    ProjectMembership.user_id == user.id,
                    ProjectMembership.role == ProjectRole.PI.value,
                )
            ),
        )
    )


def is_project_pi(session: Session, user: User, project: Project) -> bool:
    if project.pi_user_id == user.id:
        return True
    m = membership(session, user, project)
    return m is not None and m.role == ProjectRole.PI.value


def can_see(session: Session, user: User, req: SupportRequest) -> bool:
    return (
        user.is_operator
        or req.requester_user_id == user.id
        or is_project_pi(session, user, req.project)
    )


def not_found(request_id: int | str) -> NotFound:
    return NotFound(
        f"support request {request_id} not found",
        field="request",
        hint="List yours with `rechenwerk support list`.",
    )


def visible_request(
    session: Session, user: User, request_id: int, *, lock: bool = False
) -> SupportRequest:
    """The request if ``user`` may see it (see :func:`can_see`); NotFound otherwise.
    ``lock``: its row is locked until the transaction ends (PostgreSQL; SQLite holds the
    write lock anyway), so two changes at once (two closes, an answer and a close) are
    checked against each other's state instead of both passing."""
    if lock:
        req = session.scalars(
            select(SupportRequest)
            .where(SupportRequest.id == request_id)
            .with_for_update(of=SupportRequest)
            .execution_options(populate_existing=True)
        ).first()
    else:
        req = session.get(SupportRequest, request_id)
    if req is None or not can_see(session, user, req):
        raise not_found(request_id)
    return req


def messages_of(session: Session, req: SupportRequest) -> list[SupportMessage]:
    return list(
        session.scalars(
            select(SupportMessage)
            .where(SupportMessage.request_id == req.id)
            .order_by(SupportMessage.created_at, SupportMessage.id)
        )
    )


def thread(session: Session, user: User, request_id: int) -> Thread:
    req = visible_request(session, user, request_id)
    return Thread(req, messages_of(session, req))


def visible_requests(session: Session, user: User) -> Select[SupportRequest]:
    """Every request ``user`` may see, as a statement to filter further."""
    stmt = select(SupportRequest)
    if user.is_operator:
        return stmt
    return stmt.where(
        or_(
            SupportRequest.requester_user_id == user.id,
            SupportRequest.project_id.in_(_pi_project_ids(user)),
        )
    )


def list_requests(
    session: Session,
    user: User,
    *,
    state: str | None = None,
    kind: str | None = None,
    project: str | None = None,
    assignee: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[SupportRequest]:
    """The requests ``user`` may see, newest first. ``state`` may also be ``active``
    (every state but closed); ``assignee`` a username or ``none`` (unassigned)."""
    stmt = visible_requests(session, user)
    if state:
        if state == "active":
            stmt = stmt.where(SupportRequest.state != SupportState.CLOSED.value)
        else:
            check_choice(state, (*STATES, "active"), "state")
            stmt = stmt.where(SupportRequest.state == state)
    if kind:
        check_choice(kind, KINDS, "kind")
        stmt = stmt.where(SupportRequest.kind == kind)
    if project:
        try:
            pid = get_project(session, project).id
        except NotFound:
            if not user.is_operator:  # unknown and invisible look the same: no rows
                pid = -1
            else:
                raise
        stmt = stmt.where(SupportRequest.project_id == pid)
    if assignee:
        if assignee == "none":
            stmt = stmt.where(SupportRequest.assignee_user_id.is_(None))
        else:
            try:
                uid = get_user(session, assignee).id
            except NotFound:
                if not user.is_operator:
                    uid = -1
                else:
                    raise NotFound(f"user {assignee!r} not found", field="assignee") from None
            stmt = stmt.where(SupportRequest.assignee_user_id == uid)
    stmt = stmt.order_by(SupportRequest.created_at.desc(), SupportRequest.id.desc())
    return paginate(session, stmt, limit, offset)


# --------------------------------------------------------------------------- input


def _body_issue(body: str, field: str = "body") -> FieldIssue | None:
    if not body.strip():
        return FieldIssue((field,), "must not be empty")
    if len(body) > BODY_MAX:
        return FieldIssue((field,), f"must be at most {BODY_MAX:,} characters, got {len(body):,}")
    return None


def check_request_input(kind: str, subject: str, body: str) -> list[FieldIssue]:
    """Every problem with a new request's fields at once (the portal shows them all)."""
    issues: list[FieldIssue] = []
    if not kind:
        issues.append(FieldIssue(("kind",), "is required; choose one of: " + ", ".join(KINDS)))
    elif kind not in KINDS:
        issues.append(
            FieldIssue(
                ("kind",), f"{kind!r} is not a kind of support; use one of: " + ", ".join(KINDS)
            )
        )
    if not subject.strip():
        issues.append(FieldIssue(("subject",), "must not be empty"))
    elif len(subject.strip()) > SUBJECT_MAX:
        issues.append(
            FieldIssue(
                ("subject",),
                f"must be at most {SUBJECT_MAX} characters, got {len(subject.strip())}",
            )
        )
    elif "\n" in subject or "\r" in subject:
        issues.append(FieldIssue(("subject",), "must be one line"))
    problem = _body_issue(body)
    if problem is not None:
        issues.append(problem)
    return issues


# --------------------------------------------------------------------------- mail


def _greeting(user: User) -> str:
    return f"Hello {user.full_name or user.username},\n\n"


def _title(req: SupportRequest) -> str:
    return f"Support request {req.id} ({req.project.slug}): {req.subject}"


def _mail(
    session: Session,
    users: list[User],
    *,
    event: str,
    req: SupportRequest,
    subject: str,
    text: str,
    key: str,
    now: datetime,
) -> None:
    """Queue one mail per active user (each at most once per ``key``)."""
    seen: set[int] = set()
    for user in users:
        if user.id in seen or not user.is_active:
            continue
        seen.add(user.id)
        enqueue(
            session,
            user=user,
            event=event,
            subject=subject,
            body=_greeting(user) + text + f"\n\nRequest: {_title(req)}\nSee it with "
            f"`rechenwerk support show {req.id}`, or in the portal at "
            f"/support/{req.id}." + _SIGNATURE,
            dedup_key=f"support:{req.id}:{key}:{user.id}",
            now=now,
        )


def _operators(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.is_operator.is_(True), User.is_active.is_(True))
            .order_by(User.id)
        )
    )


def _quote(body: str) -> str:
    return "\n".join("> " + line for line in body.strip().splitlines())


# --------------------------------------------------------------------------- changes


def _add_message(
    session: Session, req: SupportRequest, actor: User, body: str, now: datetime
) -> SupportMessage:
    msg = SupportMessage(
        request_id=req.id,
        author_user_id=actor.id,
        author=actor.username,
        from_operator=actor.is_operator and actor.id != req.requester_user_id,
        body=body.strip(),
        created_at=now,
    )
    session.add(msg)
    session.flush()
    return msg


def _waiting_state(req: SupportRequest) -> str:
    """The state of a request that waits for the operators."""
    return (
        SupportState.ASSIGNED.value if req.assignee_user_id is not None else SupportState.OPEN.value
    )


def open_request(
    session: Session,
    actor: User,
    *,
    project: str | int,
    kind: str,
    subject: str,
    body: str,
    now: datetime,
) -> SupportRequest:
    """Open a request for ``project`` (members of the project, any role)."""
    issues = check_request_input(kind, subject, body)
    proj: Project | None = None
    try:
        proj = visible_project(session, actor, project)
    except NotFound as exc:
        issues.insert(0, FieldIssue(("project",), exc.message))
    if (
        proj is not None
        and membership(session, actor, proj) is None
        and proj.pi_user_id != actor.id
    ):
        issues.insert(0, FieldIssue(("project",), f"you are not a member of project {proj.slug!r}"))
    if issues:
        missing = proj is None and issues[0].loc == ("project",)
        if missing and len(issues) == 1:
            raise NotFound(
                issues[0].message,
                field="project",
                hint="List your projects with `rechenwerk project list`.",
            )
        if proj is not None and issues[0].loc == ("project",) and len(issues) == 1:
            raise PermissionDenied(
                issues[0].message,
                field="project",
                hint="Only members of a project may ask for support for it; its PI adds members.",
            )
        raise_issues(
            issues,
            hint="Kinds: " + ", ".join(KINDS) + f"; a one-line subject "
            f"up to {SUBJECT_MAX} characters; a body up to "
            f"{BODY_MAX:,}.",
        )
    assert proj is not None
    req = SupportRequest(
        project_id=proj.id,
        requester_user_id=actor.id,
        kind=kind,
        subject=subject.strip(),
        state=SupportState.OPEN.value,
        created_at=now,
        updated_at=now,
    )
    req.project = proj
    req.requester = actor
    session.add(req)
    session.flush()
    _add_message(session, req, actor, body, now)
    record(
        session,
        actor,
        "support.open",
        ENTITY,
        req.id,
        {"project": proj.slug, "kind": kind, "subject": req.subject, "state": req.state},
        at=now,
    )
    _mail(
        session,
        _operators(session),
        event="support_new",
        req=req,
        subject=f"New support request {req.id} ({KIND_LABELS[kind]}): {req.subject}",
        text=f"{actor.full_name or actor.username} ({actor.username}) asked for "
        f"{KIND_LABELS[kind].lower()} help for project {proj.slug}:\n\n"
        f"{_quote(body)}\n\nAssign it with `rechenwerk support assign {req.id}`.",
        key="open",
        now=now,
    )
    return req


def _refuse_closed(req: SupportRequest, what: str) -> None:
    if req.state == SupportState.CLOSED.value:
        raise InvalidTransition(
            f"support request {req.id} is closed; cannot {what}",
            field="state",
            hint=f"Reopen it first: `rechenwerk support reopen {req.id}`.",
        )


def assign(
    session: Session, actor: User, req: SupportRequest, *, assignee: str | int | None, now: datetime
) -> SupportRequest:
    """Assign the request to an operator (operators; ``assignee`` None: the actor)."""
    require_operator(actor)
    _refuse_closed(req, "assign it")
    try:
        target = actor if assignee is None or assignee == "" else get_user(session, assignee)
    except NotFound:
        raise InvalidInput(
            f"user {assignee!r} not found", field="assignee", hint="Give an operator's username."
        ) from None
    if not target.is_operator or not target.is_active:
        raise InvalidInput(
            f"{target.username!r} is not an active operator",
            field="assignee",
            hint="Requests are assigned to operators.",
        )
    if req.assignee_user_id == target.id:
        raise InvalidTransition(
            f"support request {req.id} is already assigned to {target.username!r}", field="assignee"
        )
    old_name = req.assignee.username if req.assignee is not None else None
    old_state = req.state
    req.assignee_user_id = target.id
    req.assignee = target
    if req.state == SupportState.OPEN.value:
        req.state = SupportState.ASSIGNED.value
    req.updated_at = now
    changes: dict[str, object] = {"assignee": [old_name, target.username]}
    if old_state != req.state:
        changes["state"] = [old_state, req.state]
    entry = record(session, actor, "support.assign", ENTITY, req.id, changes, at=now)
    session.flush()
    if target.id != actor.id:
        _mail(
            session,
            [target],
            event="support_assigned",
            req=req,
            subject=f"Support request {req.id} assigned to you: {req.subject}",
            text=f"{actor.username} assigned support request {req.id} of project "
            f"{req.project.slug} to you.",
            key=f"assign:{entry.id}",
            now=now,
        )
    return req


def reply(
    session: Session, actor: User, req: SupportRequest, *, body: str, now: datetime
) -> SupportMessage:
    """Add a message. An operator's (who is not the requester) answers the request; the
    requester's or a PI's puts it back with the operators, and reopens a closed one."""
    problem = _body_issue(body)
    if problem is not None:
        raise_issues([problem])
    as_operator = actor.is_operator and actor.id != req.requester_user_id
    old_state = req.state
    if as_operator:
        _refuse_closed(req, "answer it")
    msg = _add_message(session, req, actor, body, now)
    changes: dict[str, object] = {"message": msg.id}
    if as_operator:
        req.state = SupportState.ANSWERED.value
        if req.first_answered_at is None:
            req.first_answered_at = now
        action = "support.answer"
    else:
        if old_state == SupportState.CLOSED.value:
            req.closed_at = None
        req.state = _waiting_state(req)
        action = "support.reopen" if old_state == SupportState.CLOSED.value else "support.reply"
    if old_state != req.state:
        changes["state"] = [old_state, req.state]
    req.updated_at = now
    record(session, actor, action, ENTITY, req.id, changes, at=now)
    if as_operator:
        _mail(
            session,
            [req.requester],
            event="support_answered",
            req=req,
            subject=f"Answer to your support request {req.id}: {req.subject}",
            text=f"{actor.full_name or actor.username} of the centre answered your "
            f"support request:\n\n{_quote(body)}\n\nReply if you need more help, "
            f"or close the request when it is solved.",
            key=f"msg:{msg.id}",
            now=now,
        )
    else:
        to = [req.assignee] if req.assignee is not None else _operators(session)
        _mail(
            session,
            [u for u in to if u.id != actor.id],
            event="support_reply",
            req=req,
            subject=f"Reply to support request {req.id}: {req.subject}",
            text=f"{actor.full_name or actor.username} ({actor.username}) replied"
            f"{' and reopened the request' if action == 'support.reopen' else ''}:"
            f"\n\n{_quote(body)}",
            key=f"msg:{msg.id}",
            now=now,
        )
    return msg


def close(
    session: Session, actor: User, req: SupportRequest, *, comment: str = "", now: datetime
) -> SupportRequest:
    """Close the request (anyone who may see it), with an optional closing comment that
    becomes a message of the conversation."""
    if req.state == SupportState.CLOSED.value:
        raise InvalidTransition(f"support request {req.id} is already closed", field="state")
    if comment.strip():
        problem = _body_issue(comment, "comment")
        if problem is not None:
            raise_issues([problem])
        _add_message(session, req, actor, comment, now)
    old_state = req.state
    req.state = SupportState.CLOSED.value
    req.closed_at = now
    req.updated_at = now
    entry = record(
        session, actor, "support.close", ENTITY, req.id, {"state": [old_state, req.state]}, at=now
    )
    session.flush()
    note = f"\n\nClosing comment:\n\n{_quote(comment)}" if comment.strip() else ""
    if req.requester_user_id != actor.id:
        _mail(
            session,
            [req.requester],
            event="support_closed",
            req=req,
            subject=f"Support request {req.id} closed: {req.subject}",
            text=f"{actor.full_name or actor.username} closed your support request."
            f"{note}\n\nIf the problem is not solved, reply to reopen it.",
            key=f"close:{entry.id}",
            now=now,
        )
    if req.assignee is not None and req.assignee_user_id != actor.id:
        _mail(
            session,
            [req.assignee],
            event="support_closed",
            req=req,
            subject=f"Support request {req.id} closed: {req.subject}",
            text=f"{actor.username} closed the support request assigned to you.{note}",
            key=f"close:{entry.id}",
            now=now,
        )
    return req


def reopen(session: Session, actor: User, req: SupportRequest, *, now: datetime) -> SupportRequest:
    """Reopen a closed request (anyone who may see it), without a message."""
    if req.state != SupportState.CLOSED.value:
        raise InvalidTransition(
            f"support request {req.id} is {req.state}, not closed", field="state"
        )
    req.closed_at = None
    req.state = _waiting_state(req)
    req.updated_at = now
    record(
        session,
        actor,
        "support.reopen",
        ENTITY,
        req.id,
        {"state": [SupportState.CLOSED.value, req.state]},
        at=now,
    )
    return req
