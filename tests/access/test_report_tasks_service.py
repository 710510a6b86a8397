"""Award reports (issue 15 item 3): tasks made with the award and moved by its changes,
submission with publications and a PDF, operators' review, overdue reports blocking new
proposals when the centre says so, reminders, and the dashboards' items."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.award_changes import decide_change, request_change
from rechenwerk.access.awards import create_award
from rechenwerk.access.models import ReportTask
from rechenwerk.access.proposals import create_proposal
from rechenwerk.access.report_tasks import (
    attach_document,
    document_path,
    list_tasks,
    readable_document,
    review_report,
    submit_report,
    sync_report_tasks,
)
from rechenwerk.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.notifications.service import scan
from rechenwerk.web.worklist import operator_items, pi_items

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    org = make_org(session, kind="university")
    op = make_user(session, username="olga", operator=True)
    pi = make_user(session, username="pia", org=org)
    member = make_user(session, username="mo", org=org)
    project = make_project(session, pi=pi, slug="alpha", members={member: "member"})
    award = create_award(session, op, project=project, gpu_hours=3000, starts_at=T0,
                         gpu_type="A100-80GB", period_count=3, period_months=2, now=T0)
    return {"op": op, "pi": pi, "member": member, "project": project, "award": award}


def _tasks(session: Session, award_id: int) -> list[tuple[str, int, date, str]]:
    session.flush()
    return [(t.kind, t.period_index, t.due_on, t.state) for t in session.scalars(
        select(ReportTask).where(ReportTask.award_id == award_id)
        .order_by(ReportTask.due_on))]


def test_tasks_follow_the_award(session: Session, world: dict[str, Any]) -> None:
    award, op, pi = world["award"], world["op"], world["pi"]
    # 3 two-month periods from 1 January: status reports at the end of the first two,
    # the final report two months after the end (1 July -> 1 September).
    assert _tasks(session, award.id) == [
        ("status", 0, date(2026, 3, 1), "open"), ("status", 1, date(2026, 5, 1), "open"),
        ("final", -1, date(2026, 9, 1), "open")]
    now = T0 + timedelta(days=3)
    ext = request_change(session, pi, award, kind="extension",
                         until=datetime(2026, 8, 1, tzinfo=UTC), reason="outage", now=now)
    decide_change(session, op, ext, decision="approved", note="ok", now=now,
                  final_report_months=3)
    assert _tasks(session, award.id)[-1] == ("final", -1, date(2026, 11, 1), "open")
    end = request_change(session, pi, award, kind="early_end",
                         until=datetime(2026, 4, 1, tzinfo=UTC), reason="done", now=now)
    decide_change(session, op, end, decision="approved", note="ok", now=now)
    # two periods left: one status report (the first), the final one two months after 1 April
    assert _tasks(session, award.id) == [
        ("status", 0, date(2026, 3, 1), "open"), ("final", -1, date(2026, 6, 1), "open")]


def test_submit_review_and_the_document(session: Session, world: dict[str, Any],
                                        tmp_path: Path) -> None:
    award, op, pi, member = world["award"], world["op"], world["pi"], world["member"]
    final = session.scalars(select(ReportTask).where(
        ReportTask.award_id == award.id, ReportTask.kind == "final")).one()
    now = T0 + timedelta(days=200)
    with pytest.raises(InvalidInput) as err:
        submit_report(session, pi, final, summary=" ", now=now, publications=[
            {"doi": "doi:10.1/x", "title": "t"}, {"doi": "10.1234/ok", "title": ""}])
    assert {i.path for i in err.value.issues} == {"summary", "publications.0.doi",
                                                  "publications.1.title"}
    assert final.state == "open" and final.summary == ""
    with pytest.raises(PermissionDenied):
        submit_report(session, member, final, summary="s", publications=[], now=now)
    for data, match in ((b"", "empty"), (b"<html>", "not a PDF"), (PDF * 100, "limit")):
        with pytest.raises(InvalidInput, match=match):
            attach_document(session, pi, final, name="r.pdf", data=data, max_bytes=1000,
                            data_dir=tmp_path, now=now)
    attach_document(session, pi, final, name="../../etc/My Report (final).PDF", data=PDF,
                    max_bytes=1000, data_dir=tmp_path, now=now)
    assert final.document_name == "My_Report_final_.PDF" and final.document_bytes == len(PDF)
    path = document_path(tmp_path, final)
    assert path == tmp_path / "reports" / f"{final.id}.pdf" and path.read_bytes() == PDF
    assert path.stat().st_mode & 0o777 == 0o600
    assert readable_document(session, member, final, tmp_path) == path
    submit_report(session, pi, final, summary="We trained a 7B model; 2 papers.",
                  publications=[{"doi": "https://doi.org/10.5555/abc.1", "title": "Paper"}],
                  now=now)
    assert final.state == "submitted" and final.publications == [
        {"doi": "10.5555/abc.1", "title": "Paper"}]
    with pytest.raises(InvalidInput, match="say what to change"):
        review_report(session, op, final, decision="returned", note="", now=now)
    review_report(session, op, final, decision="returned", note="Add the GPU-hours used.",
                  now=now)
    assert final.state == "open" and final.review_note == "Add the GPU-hours used."
    submit_report(session, pi, final, summary="We used 2,900 GPU-hours.", publications=[],
                  now=now)
    review_report(session, op, final, decision="accepted", note="", now=now)
    assert final.state == "accepted"
    with pytest.raises(InvalidTransition):
        attach_document(session, pi, final, name="r.pdf", data=PDF, max_bytes=1000,
                        data_dir=tmp_path, now=now)
    with pytest.raises(InvalidTransition):
        submit_report(session, pi, final, summary="again", publications=[], now=now)
    assert list_tasks(session, pi, state="accepted").total == 1
    assert list_tasks(session, make_user(session)).total == 0


def test_an_overdue_final_report_blocks_new_proposals_when_the_centre_says_so(
        session: Session, world: dict[str, Any]) -> None:
    pi, project = world["pi"], world["project"]
    call = make_call(session, access_mode="research", opens_at=datetime(2026, 9, 1,
                                                                        tzinfo=UTC),
                     closes_at=datetime(2026, 12, 1, tzinfo=UTC))
    late = datetime(2026, 9, 2, tzinfo=UTC)  # the final report was due 1 September
    args: dict[str, Any] = {"call": call, "project": project, "title": "t",
                            "gpu_type": "A100-80GB", "requested_gpu_hours": 100, "now": late}
    with pytest.raises(Conflict, match="owes the final report of award") as err:
        create_proposal(session, pi, block_on_overdue_report=True, **args)
    assert "award report-submit" in (err.value.hint or "")
    assert create_proposal(session, pi, **args).state == "draft"  # not blocked by default
    assert list_tasks(session, pi, overdue_on=late.date()).total == 3


def test_reminders_and_dashboard_items(session: Session, world: dict[str, Any]) -> None:
    award, pi = world["award"], world["pi"]
    near = datetime(2026, 2, 20, tzinfo=UTC)  # the first status report is due 1 March
    scan(session, now=near, report_reminder_days=14)
    scan(session, now=near, report_reminder_days=14)  # once only
    mails = session.scalars(select(OutboxMessage).where(
        OutboxMessage.event == "report_due")).all()
    assert len(mails) == 1 and "due on 2026-03-01" in mails[0].subject
    assert "award report-submit" in mails[0].body and mails[0].user_id == pi.id
    items = {i.key: i for i in pi_items(session, pi, near.date(), 14)}
    assert items["reports"].count == 1 and items["reports"].href == f"/awards/{award.id}"
    late = datetime(2026, 9, 5, tzinfo=UTC)
    items = {i.key: i for i in pi_items(session, pi, late.date(), 14)}
    assert "(3 overdue)" in items["reports"].text
    ops = {i.key: i for i in operator_items(session, late, [])}
    assert ops["reports-overdue"].count == 1  # final reports only
    sync_report_tasks(session, award, final_report_months=2, now=late)  # idempotent
    assert len(_tasks(session, award.id)) == 3
