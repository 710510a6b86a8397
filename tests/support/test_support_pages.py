"""The portal's support pages (ASGI app, SQLite and PostgreSQL): the nav entry, the
new-request form reporting every error beside its field, 404 for people who may not see
a request, the operator's assign/answer, the confirmed close, the summary, and the
audit page in words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import make_org, make_project, make_user
from portal_login import csrf as _csrf
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.support.models import SupportRequest


def _post(client: Any, path: str, data: dict[str, str], page: str) -> Any:
    return client.post(
        path, data={**data, "csrf_token": _csrf(client.get(page).text)}, follow_redirects=False
    )


@pytest.fixture
def people(session: Session) -> dict[str, Any]:
    uni = make_org(session, name="Uni S", kind="university")
    users = {
        name: make_user(
            session, username=name, org=uni, password_hash=_hash(), operator=name in ("olaf", "oda")
        )
        for name in ("pia", "mem", "vie", "olaf", "oda")
    }
    make_project(
        session,
        pi=users["pia"],
        slug="sigma",
        title="Sigma",
        members={users["mem"]: "member", users["vie"]: "viewer"},
    )
    session.commit()
    return users


def test_new_request_form_reports_every_error_at_once(
    api_client: Any, people: dict[str, Any]
) -> None:
    _login(api_client, "mem")
    home = api_client.get("/").text
    assert re.search(r'<a href="/support"[^>]*>Support</a>', home)
    form = api_client.get("/support/new").text
    for name, label in (
        ("project", "Project"),
        ("kind", "Kind of help"),
        ("subject", "Subject"),
        ("body", "Message"),
    ):
        assert f'<label class="" for="f-{name}">{label}' in form  # each field labelled
    r = _post(
        api_client,
        "/support/new",
        {"project": "", "kind": "", "subject": "", "body": ""},
        "/support/new",
    )
    assert r.status_code == 422
    for name in ("project", "kind", "subject", "body"):
        assert f'data-testid="error-{name}"' in r.text
        assert f'aria-describedby="err-{name}"' in r.text
    assert "Subject: must not be empty" in r.text
    r = _post(
        api_client,
        "/support/new",
        {"project": "sigma", "kind": "gpus", "subject": "x" * 201, "body": "Hi"},
        "/support/new",
    )
    assert r.status_code == 422 and 'data-testid="error-kind"' in r.text
    assert "at most 200 characters" in r.text
    assert 'value="' + "x" * 201 + '"' in r.text  # the input is kept
    assert 'data-testid="error-body"' not in r.text
    r = _post(
        api_client,
        "/support/new",
        {"project": "sigma", "kind": "data", "subject": "Moving 5 TB", "body": "Which tool?"},
        "/support/new",
    )
    assert r.status_code == 303
    detail = api_client.get(r.headers["location"]).text
    assert "Moving 5 TB" in detail and "Which tool?" in detail
    assert 'data-testid="assign-form"' not in detail  # operators only


def test_operator_flow_visibility_and_confirmed_close(
    api_client: Any, session: Session, people: dict[str, Any]
) -> None:
    _login(api_client, "mem")
    r = _post(
        api_client,
        "/support/new",
        {"project": "sigma", "kind": "porting", "subject": "JAX on 16 GPUs", "body": "Slow."},
        "/support/new",
    )
    path = r.headers["location"]
    rid = int(path.rsplit("/", 1)[1])
    for name in ("vie", "oda"):
        _login(api_client, name)
        if name == "vie":  # a fellow member who is no PI: not found
            assert api_client.get(path).status_code == 404
            assert "JAX on 16 GPUs" not in api_client.get("/support").text
            assert (
                api_client.post(
                    f"{path}/reply",
                    data={"body": "x", "csrf_token": _csrf(api_client.get("/support").text)},
                ).status_code
                == 404
            )
    assert api_client.get("/support/12345").status_code == 404
    assert api_client.get("/support/abc").status_code == 404

    listing = api_client.get("/support?state=open&kind=porting").text
    assert f'data-testid="support-row-{rid}"' in listing
    assert 'data-testid="support-summary"' in listing
    assert 'data-testid="new-request"' not in listing  # oda is in no project
    assert f'data-testid="support-row-{rid}"' not in api_client.get("/support?kind=data").text

    r = _post(api_client, f"{path}/assign", {"assignee": "olaf"}, path)
    assert r.status_code == 303
    page = api_client.get(path).text
    assert 'data-testid="support-assignee">olaf<' in page
    r = _post(api_client, f"{path}/reply", {"body": "  "}, path)
    assert r.status_code == 422 and 'data-testid="error-body"' in r.text
    r = _post(api_client, f"{path}/reply", {"body": "Use pjit with a mesh."}, path)
    assert r.status_code == 303
    page = api_client.get(path).text
    assert "answered (waiting for the requester)" in page and "Use pjit" in page

    confirm = api_client.get(f"{path}/close").text
    assert 'data-testid="confirm-close"' in confirm and "Keep it open" in confirm
    r = _post(api_client, f"{path}/close", {"comment": "done"}, path)  # no confirm=yes
    assert r.status_code == 422 and "was not closed" in r.text
    session.expire_all()
    assert session.scalars(select(SupportRequest.state)).one() == "answered"
    r = _post(
        api_client, f"{path}/close", {"confirm": "yes", "comment": "Solved."}, f"{path}/close"
    )
    assert r.status_code == 303
    page = api_client.get(path).text
    assert 'data-testid="reopen"' in page and "Solved." in page
    assert "Reopen it to answer again" in page

    audit = api_client.get("/ops/audit?entity=support_request").text
    for words in (
        "opened a support request",
        "assigned a support request",
        "answered a support request",
        "closed a support request",
    ):
        assert words in audit
    assert f'<a href="/support/{rid}">support request {rid}</a>' in audit
    assert "<dd>— → olaf</dd>" in audit

    _login(api_client, "pia")  # the PI sees it and may reopen it by replying
    r = _post(api_client, f"{path}/reply", {"body": "It is slow again."}, path)
    assert r.status_code == 303
    assert "assigned (waiting for the assignee)" in api_client.get(path).text


def test_reports_page_has_the_support_table_and_csv(
    api_client: Any, session: Session, people: dict[str, Any]
) -> None:
    from datetime import timedelta

    from factories import T0
    from rechenwerk.support import service as support

    req = support.open_request(
        session,
        people["mem"],
        project="sigma",
        kind="data",
        subject="Quota",
        body="More space?",
        now=T0 - timedelta(days=2),
    )
    support.reply(session, people["olaf"], req, body="Granted.", now=T0 - timedelta(days=1))
    session.commit()
    _login(api_client, "olaf")
    html = api_client.get("/reports").text
    section = html[html.index('data-testid="report-support"') :]
    assert "1 opened, median first answer 24.0 h" in section
    assert re.search(r"<td class=\"\">\s*data\s*</td>", section)
    csv = api_client.get(
        "/reports/support.csv?from=2025-12-01T00:00:00%2B00:00&to=2026-01-01T00:00:00%2B00:00"
    )
    assert csv.status_code == 200
    assert csv.text.splitlines()[1].startswith("data,1,1,1,0,24.000,24.000,,")
    assert api_client.get("/reports/chart/support.svg").status_code == 404
    _login(api_client, "vie")  # a viewer of the project: the request is not theirs
    html = api_client.get("/reports").text
    assert "No support request opened in this range." in html
