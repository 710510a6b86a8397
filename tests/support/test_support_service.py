"""Support requests in the service (SQLite and PostgreSQL): who may open and see them,
the states, the audit entries, and the mails queued and delivered to an SMTP server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_project, make_user
from rechenwerk.access.audit import list_audit
from rechenwerk.access.models import AuditEntry
from rechenwerk.errors import InvalidInput, InvalidTransition, NotFound, PermissionDenied
from rechenwerk.notifications import service as notes
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.notifications.senders import SmtpSender
from rechenwerk.support import service as support
from smtp_capture import SmtpCapture, subject_of, text_of


def _centre(session: Session) -> dict[str, Any]:
    op = make_user(session, username="olga", operator=True)
    op2 = make_user(session, username="otto", operator=True)
    pi = make_user(session, username="petra")
    member = make_user(session, username="max")
    viewer = make_user(session, username="vera")
    other = make_user(session, username="eve")
    project = make_project(session, pi=pi, slug="llm", members={member: "member", viewer: "viewer"})
    make_project(session, pi=other, slug="elsewhere")
    return {
        "op": op,
        "op2": op2,
        "pi": pi,
        "member": member,
        "viewer": viewer,
        "other": other,
        "project": project,
    }


def _outbox(session: Session) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _actions(session: Session, request_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity == "support_request", AuditEntry.entity_id == str(request_id))
            .order_by(AuditEntry.id)
        )
    )


def test_lifecycle_states_audit_and_mail(session: Session) -> None:
    c = _centre(session)
    req = support.open_request(
        session,
        c["member"],
        project="llm",
        kind="porting",
        subject="  NCCL hangs at 64 GPUs ",
        body="Our all-reduce stalls.",
        now=T0,
    )
    assert (req.state, req.subject, req.first_answered_at) == (
        "open",
        "NCCL hangs at 64 GPUs",
        None,
    )
    mails = _outbox(session)
    assert {m.to_address for m in mails} == {c["op"].email, c["op2"].email}
    assert all(m.event == "support_new" and "Our all-reduce stalls." in m.body for m in mails)

    support.assign(session, c["op"], req, assignee="otto", now=T0 + timedelta(minutes=5))
    assert req.state == "assigned" and req.assignee is not None
    assert _outbox(session)[-1].event == "support_assigned"
    assert _outbox(session)[-1].to_address == c["op2"].email

    support.reply(session, c["op2"], req, body="Set NCCL_IB_HCA=mlx5.", now=T0 + timedelta(hours=2))
    assert req.state == "answered" and req.first_answered_at == T0 + timedelta(hours=2)
    answer = _outbox(session)[-1]
    assert (answer.event, answer.to_address) == ("support_answered", c["member"].email)
    assert "NCCL_IB_HCA" in answer.body

    support.reply(session, c["member"], req, body="Still slow at 128.", now=T0 + timedelta(hours=3))
    assert req.state == "assigned"  # back with the assignee
    back = _outbox(session)[-1]
    assert (back.event, back.to_address) == ("support_reply", c["op2"].email)

    support.reply(
        session, c["op2"], req, body="Use the fat-tree partition.", now=T0 + timedelta(hours=4)
    )
    assert req.first_answered_at == T0 + timedelta(hours=2)  # the first answer stays
    support.close(session, c["op2"], req, comment="Solved.", now=T0 + timedelta(hours=5))
    assert req.state == "closed" and req.closed_at == T0 + timedelta(hours=5)
    closed = _outbox(session)[-1]
    assert (closed.event, closed.to_address) == ("support_closed", c["member"].email)
    assert "Solved." in closed.body
    with pytest.raises(InvalidTransition) as e:
        support.close(session, c["member"], req, now=T0 + timedelta(hours=6))
    assert e.value.field == "state"
    with pytest.raises(InvalidTransition):
        support.reply(session, c["op2"], req, body="late", now=T0 + timedelta(hours=6))

    # The requester's reply reopens it, back to the assignee.
    support.reply(session, c["member"], req, body="It came back.", now=T0 + timedelta(days=1))
    assert req.state == "assigned" and req.closed_at is None
    support.close(session, c["member"], req, now=T0 + timedelta(days=2))
    support.reopen(session, c["pi"], req, now=T0 + timedelta(days=3))
    assert req.state == "assigned"
    with pytest.raises(InvalidTransition):
        support.reopen(session, c["pi"], req, now=T0 + timedelta(days=3))

    assert _actions(session, req.id) == [
        "support.open",
        "support.assign",
        "support.answer",
        "support.reply",
        "support.answer",
        "support.close",
        "support.reopen",
        "support.close",
        "support.reopen",
    ]
    entries = list_audit(session, c["op"], entity="support_request").items
    assign_entry = next(e for e in entries if e.action == "support.assign")
    assert assign_entry.changes == {"assignee": [None, "otto"], "state": ["open", "assigned"]}
    thread = support.thread(session, c["pi"], req.id)
    assert [m.author for m in thread.messages] == ["max", "otto", "max", "otto", "otto", "max"]
    assert [m.from_operator for m in thread.messages] == [False, True, False, True, True, False]


def test_answer_without_assignment_and_replies_to_every_operator(session: Session) -> None:
    c = _centre(session)
    req = support.open_request(
        session, c["pi"], project="llm", kind="data", subject="Upload 40 TB", body="How?", now=T0
    )
    support.reply(session, c["op"], req, body="Use the data mover.", now=T0)
    assert req.state == "answered"
    support.reply(session, c["pi"], req, body="Thanks, and the quota?", now=T0)
    assert req.state == "open"  # nobody assigned: back to every operator
    replies = [m for m in _outbox(session) if m.event == "support_reply"]
    assert {m.to_address for m in replies} == {c["op"].email, c["op2"].email}
    # Assigning an answered request keeps its state; the same assignee twice is refused.
    support.reply(session, c["op"], req, body="1 PB.", now=T0)
    support.assign(session, c["op"], req, assignee=None, now=T0)
    assert (req.state, req.assignee_user_id) == ("answered", c["op"].id)
    assert not any(m.event == "support_assigned" for m in _outbox(session))  # self-assigned
    with pytest.raises(InvalidTransition):
        support.assign(session, c["op"], req, assignee="olga", now=T0)
    with pytest.raises(InvalidInput) as e:
        support.assign(session, c["op"], req, assignee="max", now=T0)
    assert e.value.field == "assignee"
    with pytest.raises(InvalidInput) as e:
        support.assign(session, c["op"], req, assignee="nobody", now=T0)
    assert e.value.field == "assignee"
    with pytest.raises(PermissionDenied):
        support.assign(session, c["pi"], req, assignee="olga", now=T0)


def test_visibility_requester_pis_and_operators_only(session: Session) -> None:
    c = _centre(session)
    mine = support.open_request(
        session,
        c["member"],
        project="llm",
        kind="onboarding",
        subject="First steps",
        body="Where do I start?",
        now=T0,
    )
    theirs = support.open_request(
        session,
        c["other"],
        project="elsewhere",
        kind="other",
        subject="Invoice",
        body="Where is it?",
        now=T0,
    )
    for who in ("member", "pi", "op"):
        assert support.visible_request(session, c[who], mine.id) is mine
    for who in ("viewer", "other"):  # a fellow member and an outsider: not found
        with pytest.raises(NotFound) as e:
            support.visible_request(session, c[who], mine.id)
        assert e.value.field == "request"
    with pytest.raises(NotFound):
        support.visible_request(session, c["member"], 10**6)

    def ids(who: str, **kw: Any) -> list[int]:
        return [r.id for r in support.list_requests(session, c[who], **kw).items]

    assert ids("member") == [mine.id] and ids("pi") == [mine.id]
    assert ids("viewer") == [] and ids("other") == [theirs.id]
    assert ids("op") == [theirs.id, mine.id]
    assert ids("op", kind="onboarding") == [mine.id]
    assert ids("op", project="elsewhere") == [theirs.id]
    assert ids("member", project="elsewhere") == []  # invisible project: empty, no error
    assert ids("op", state="open") == [theirs.id, mine.id]
    assert ids("op", assignee="none") == [theirs.id, mine.id]
    support.close(session, c["op"], theirs, now=T0)
    assert ids("op", state="active") == [mine.id]
    with pytest.raises(InvalidInput) as e:
        support.list_requests(session, c["op"], state="pending")
    assert e.value.field == "state"
    with pytest.raises(InvalidInput) as e:
        support.list_requests(session, c["op"], kind="hardware")
    assert e.value.field == "kind"
    with pytest.raises(NotFound):
        support.list_requests(session, c["op"], project="nope")


def test_validation_names_every_field(session: Session) -> None:
    c = _centre(session)
    with pytest.raises(InvalidInput) as e:
        support.open_request(
            session,
            c["member"],
            project="llm",
            kind="hardware",
            subject="x" * 201,
            body="  ",
            now=T0,
        )
    assert [i.path for i in e.value.issues] == ["kind", "subject", "body"]
    assert e.value.field == "kind"
    with pytest.raises(InvalidInput) as e:
        support.open_request(
            session,
            c["member"],
            project="llm",
            kind="data",
            subject="two\nlines",
            body="b" * (support.BODY_MAX + 1),
            now=T0,
        )
    assert [i.path for i in e.value.issues] == ["subject", "body"]
    # Not a member: the project is not found (its existence does not leak) ...
    with pytest.raises(NotFound) as nf:
        support.open_request(
            session, c["other"], project="llm", kind="data", subject="s", body="b", now=T0
        )
    assert nf.value.field == "project"
    # ... and an operator, who sees every project, is told they are no member.
    with pytest.raises(PermissionDenied) as pd:
        support.open_request(
            session, c["op"], project="llm", kind="data", subject="s", body="b", now=T0
        )
    assert pd.value.field == "project"
    with pytest.raises(InvalidInput) as e:  # several problems: all of them, project first
        support.open_request(
            session, c["other"], project="llm", kind="", subject="", body="b", now=T0
        )
    assert [i.path for i in e.value.issues] == ["project", "kind", "subject"]
    # A viewer is a member too and may ask.
    assert (
        support.open_request(
            session, c["viewer"], project="llm", kind="other", subject="s", body="b", now=T0
        ).state
        == "open"
    )
    req = support.list_requests(session, c["op"]).items[0]
    with pytest.raises(InvalidInput) as e:
        support.reply(session, c["op"], req, body=" \n ", now=T0)
    assert e.value.field == "body"


def test_mails_reach_an_smtp_server(session: Session) -> None:
    c = _centre(session)
    req = support.open_request(
        session,
        c["member"],
        project="llm",
        kind="porting",
        subject="Scaling help",
        body="Please help us scale.",
        now=T0,
    )
    support.assign(session, c["op"], req, assignee="otto", now=T0)
    support.reply(session, c["op2"], req, body="Try FSDP.", now=T0)
    support.close(session, c["op2"], req, now=T0)
    with SmtpCapture() as smtp:
        sender = SmtpSender(smtp.host, smtp.port, "support@centre.example", tls="off")
        report = notes.deliver_due(session, sender, now=T0)
        sender.close()
        assert (report.sent, report.failed) == (5, 0)  # 2 new, 1 assigned, answer, close
        to_member = smtp.to(c["member"].email)
        assert [subject_of(m) for m in to_member] == [
            f"Answer to your support request {req.id}: Scaling help",
            f"Support request {req.id} closed: Scaling help",
        ]
        assert "Try FSDP." in text_of(to_member[0])
        assert f"rechenwerk support show {req.id}" in text_of(to_member[0])
        assert len(smtp.to(c["op2"].email)) == 2  # new request, then the assignment
