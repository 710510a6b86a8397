"""Notifications: what gets queued (once), delivery with retries, the SMTP transport
against a tiny SMTP server, and preferences."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_call, make_org, make_project, make_user
from rechenwerk.access.models import Proposal
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.errors import InvalidInput
from rechenwerk.jobs.models import Job
from rechenwerk.notifications import service as notes
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.notifications.senders import LogSender, Mail, SmtpSender


class FlakySender:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[Mail] = []

    def send(self, mail: Mail) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("relay down")
        self.sent.append(mail)


def _outbox(session: Session) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_decided_proposal_queues_one_mail_per_person_once(session: Session) -> None:
    org = make_org(session)
    pi = make_user(session, org=org)
    member = make_user(session, org=org)
    project = make_project(session, pi=pi, members={member: "member"})
    call = make_call(session)
    p = Proposal(call_id=call.id, project_id=project.id, applicant_user_id=member.id,
                 title="Big model", abstract="", justification="", gpu_type="A100-80GB",
                 requested_gpu_hours=10.0, state="accepted", decision_comment="Well done",
                 created_at=T0, decided_at=T0)
    session.add(p)
    session.flush()
    assert notes.scan(session, now=T0 + timedelta(hours=1)) == 2  # applicant and PI
    assert notes.scan(session, now=T0 + timedelta(hours=2)) == 0  # idempotent
    msgs = _outbox(session)
    assert {m.to_address for m in msgs} == {pi.email, member.email}
    assert all("accepted" in m.subject and "Well done" in m.body for m in msgs)


def test_expiring_award_and_low_balance_go_to_the_pi(session: Session) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    award = make_award(session, project, gpu_hours=100.0, starts_at=T0, period_months=1)
    now = award.expires_at - timedelta(days=5)
    settle_usage(session, project_id=project.id, gpus=1, started_at=T0,
                 ended_at=T0 + timedelta(hours=95), now=now, external_id="slurm-1")
    assert notes.scan(session, now=now) == 2
    events = {m.event: m for m in _outbox(session)}
    assert "expires in 5 days" in events["award_expiring"].subject
    assert "5.0 of 100.0 GPU-hours" in events["balance_low"].body
    assert all(m.to_address == pi.email for m in events.values())
    # A PI who turned the warning off gets no low-balance mail for the next project.
    other = make_project(session, pi=make_user(session))
    make_award(session, other, gpu_hours=10.0, starts_at=T0, period_months=12)
    notes.set_preferences(session, session.get(type(pi), other.pi_user_id), job_finished=False,
                          job_failed=False, low_balance_percent=0, now=now)
    settle_usage(session, project_id=other.id, gpus=1, started_at=T0,
                 ended_at=T0 + timedelta(hours=10), now=now, external_id="slurm-2")
    assert notes.scan(session, now=now) == 0


def test_job_mails_are_opt_in(session: Session) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    end = T0 + timedelta(hours=1)
    for state in ("completed", "failed"):
        session.add(Job(project_id=project.id, user_id=pi.id, name=f"j-{state}", spec={},
                        state=state, qos="normal", requested_qos="normal", over_budget=False,
                        gpus=2, walltime_s=7200, attempt=1, attained_gpu_s=0.0,
                        submitted_at=T0, started_at=T0, ended_at=end, updated_at=end,
                        exit_code=0 if state == "completed" else 3))
    session.flush()
    assert notes.scan(session, now=end) == 0  # nobody opted in
    notes.set_preferences(session, pi, job_finished=False, job_failed=True,
                          low_balance_percent=10, now=end)
    assert notes.scan(session, now=end) == 1
    [msg] = _outbox(session)
    assert msg.event == "job_failed" and "exit code 3" in msg.body
    # A scan with ``since`` looks only at jobs that ended after the previous scan (minus a
    # margin): a failed job that ended long before it is left to the full scan.
    old_end = end - timedelta(hours=3)
    session.add(Job(project_id=project.id, user_id=pi.id, name="old", spec={}, state="failed",
                    qos="normal", requested_qos="normal", over_budget=False, gpus=1,
                    walltime_s=60, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
                    started_at=T0, ended_at=old_end, updated_at=old_end, exit_code=1))
    session.flush()
    assert notes.scan(session, now=end + timedelta(hours=2),
                      since=end + timedelta(hours=1)) == 0
    assert notes.scan(session, now=end + timedelta(hours=2)) == 1


def test_delivery_retries_with_backoff_then_gives_up(session: Session) -> None:
    user = make_user(session)
    notes.enqueue(session, user=user, event="job_finished", subject="s", body="b",
                  dedup_key="k1", now=T0)
    sender = FlakySender(failures=2)
    r = notes.deliver_due(session, sender, now=T0)
    assert (r.sent, r.failed) == (0, 1)
    [msg] = _outbox(session)
    assert msg.next_attempt_at == T0 + timedelta(seconds=60)
    assert "relay down" in msg.last_error
    assert notes.deliver_due(session, sender, now=T0 + timedelta(seconds=30)).failed == 0
    assert notes.deliver_due(session, sender, now=T0 + timedelta(seconds=60)).failed == 1
    assert msg.next_attempt_at == T0 + timedelta(seconds=180)  # 60 s, then 120 s
    assert notes.deliver_due(session, sender, now=T0 + timedelta(hours=1)).sent == 1
    assert msg.sent_at is not None and len(sender.sent) == 1
    assert notes.deliver_due(session, sender, now=T0 + timedelta(days=1)).sent == 0

    notes.enqueue(session, user=user, event="job_finished", subject="s2", body="b",
                  dedup_key="k2", now=T0)
    broken = FlakySender(failures=10**6)
    t = T0
    for _ in range(notes.MAX_ATTEMPTS):
        notes.deliver_due(session, broken, now=t)
        t += timedelta(hours=7)
    last = _outbox(session)[-1]
    assert last.gave_up and last.sent_at is None and last.attempts == notes.MAX_ATTEMPTS


def test_enqueue_validates_and_deduplicates(session: Session) -> None:
    user = make_user(session)
    assert notes.enqueue(session, user=user, event="job_failed", subject="a", body="b",
                         dedup_key="same", now=T0) is not None
    assert notes.enqueue(session, user=user, event="job_failed", subject="a", body="b",
                         dedup_key="same", now=T0) is None
    with pytest.raises(InvalidInput) as e:
        notes.enqueue(session, user=user, event="lunch", subject="a", body="b",
                      dedup_key="x", now=T0)
    assert e.value.field == "event"
    with pytest.raises(InvalidInput) as e:
        notes.set_preferences(session, user, job_finished=True, job_failed=True,
                              low_balance_percent=150, now=T0)
    assert e.value.field == "low_balance_percent"


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to accept messages: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode().strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                self.wfile.write(b"250 test\r\n")
            elif cmd.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                self.wfile.write(b"250 OK\r\n")
            elif cmd == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += self.rfile.readline()
                self.server.messages.append(data.decode())  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif cmd == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 not implemented\r\n")


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_smtp_sender_delivers_to_a_real_smtp_server(smtp_server: socketserver.TCPServer
                                                     ) -> None:
    host, port = smtp_server.server_address[:2]
    sender = SmtpSender(str(host), int(port), "rechenwerk@centre.example")
    sender.send(Mail("pi@uni.example", "Proposal 7 accepted", "Hello,\nit was accepted."))
    sender.send(Mail("pi@uni.example", "Second", "again"))
    sender.close()
    msgs = smtp_server.messages  # type: ignore[attr-defined]
    assert len(msgs) == 2
    assert "Subject: Proposal 7 accepted" in msgs[0] and "To: pi@uni.example" in msgs[0]
    assert "From: rechenwerk@centre.example" in msgs[0]


def test_log_sender_keeps_what_it_logged() -> None:
    sender = LogSender()
    sender.send(Mail("a@b.example", "s", "b"))
    assert sender.sent == [Mail("a@b.example", "s", "b")]


def test_operators_list_and_requeue_failed_mail(session: Session) -> None:
    from rechenwerk.errors import Conflict, PermissionDenied

    op = make_user(session, operator=True)
    user = make_user(session)
    notes.enqueue(session, user=user, event="job_failed", subject="s", body="b",
                  dedup_key="f1", now=T0)
    broken = FlakySender(failures=10**6)
    t = T0
    for _ in range(notes.MAX_ATTEMPTS):
        notes.deliver_due(session, broken, now=t)
        t += timedelta(hours=7)
    [failed] = notes.list_outbox(session, op, status="failed")
    assert notes.list_outbox(session, op, status="queued") == []
    with pytest.raises(PermissionDenied):
        notes.list_outbox(session, user)
    with pytest.raises(InvalidInput):
        notes.list_outbox(session, op, status="lost")
    notes.requeue(session, op, failed.id, now=t)
    assert notes.deliver_due(session, FlakySender(0), now=t).sent == 1
    with pytest.raises(Conflict):
        notes.requeue(session, op, failed.id, now=t)
