"""Portal: the PI submits the final report on the award's page (summary, publications
"DOI title" per line, the PDF as a multipart upload; mistakes beside their fields), the
operator's dashboard counts it, the operator returns it with a note and accepts it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login

from factories import T0, make_org, make_project, make_user
from rechenwerk.access.awards import create_award
from rechenwerk.access.models import ReportTask

PDF = b"%PDF-1.5\n% a report\n%%EOF\n"


@pytest.fixture
def world(session: Session) -> dict[str, int]:
    org = make_org(session, kind="university")
    op = make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=org, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    award = create_award(session, op, project=project, gpu_hours=1000,
                         starts_at=T0 - timedelta(days=120), gpu_type="A100-80GB",
                         period_count=1, period_months=3, now=T0)
    session.commit()
    final = next(t for t in session.query(ReportTask).filter_by(award_id=award.id))
    return {"award": award.id, "task": final.id}


def test_final_report_in_the_portal(api_client: Any, world: dict[str, int]) -> None:
    c = login(api_client, "pia")
    page = c.get(f"/awards/{world['award']}").text
    assert f'data-testid="report-form-{world["task"]}"' in page
    assert "We acknowledge the compute time granted" in page
    url = f"/report-tasks/{world['task']}/submit"
    r = c.post(url, data={"summary": "", "publications": "10.1234/x",
                          "csrf_token": csrf(page)},
               files={"document": ("report.pdf", b"not a pdf", "application/pdf")})
    assert r.status_code == 422
    assert "not a PDF" in error_of(r.text, "document")
    r = c.post(url, data={"summary": "s", "publications": "10.1234/x",
                          "csrf_token": csrf(page)})
    assert r.status_code == 422 and "no title after the DOI" in error_of(r.text,
                                                                          "publications")
    r = c.post(url, data={"summary": "", "publications": "", "csrf_token": csrf(page)},
               files={"document": ("report.pdf", PDF, "application/pdf")})
    assert r.status_code == 422 and "must not be empty" in error_of(r.text, "summary")
    r = c.post(url, data={"summary": "Trained and published.",
                          "publications": "10.1234/abc.1 Our paper", "csrf_token": csrf(page)},
               files={"document": ("Final report.pdf", PDF, "application/pdf")},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get(f"/awards/{world['award']}").text
    assert "Final_report.pdf" in page
    assert c.get(f"/report-tasks/{world['task']}/document").content == PDF

    c = login(api_client, "op")
    assert "1 award report waits for review" in c.get("/").text
    queue = c.get("/report-tasks").text
    assert "Our paper" in queue and "10.1234/abc.1" in queue
    r = c.post(f"/report-tasks/{world['task']}/review",
               data={"decision": "returned", "note": "", "csrf_token": csrf(queue)})
    assert r.status_code == 422 and "say what to change" in error_of(r.text, "note")
    r = c.post(f"/report-tasks/{world['task']}/review",
               data={"decision": "accepted", "note": "", "csrf_token": csrf(queue)},
               follow_redirects=False)
    assert r.status_code == 303
    assert "No report submitted." in c.get("/report-tasks").text
