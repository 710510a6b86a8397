"""Portal fixes from issue 18 (ASGI app, SQLite and PostgreSQL): accessibility markup,
actions offered only to those who may take them, readable empty states, confirmed
call closing and a readable audit log."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_call, make_org, make_project, make_user
from portal_login import csrf as _csrf
from portal_login import login as _login
from portal_login import password_hash as _hash


@pytest.fixture
def people(session: Session) -> dict[str, Any]:
    uni = make_org(session, name="Uni A", kind="university")
    pi = make_user(session, username="pia", org=uni, password_hash=_hash())
    member = make_user(session, username="mem", org=uni, password_hash=_hash())
    viewer = make_user(session, username="vie", org=uni, password_hash=_hash())
    op = make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    alpha = make_project(session, pi=pi, slug="alpha",
                         members={member: "member", viewer: "viewer"})
    make_award(session, alpha, gpu_hours=100.0, starts_at=T0 - timedelta(days=1))
    make_call(session, slug="open-call", opens_at=T0 - timedelta(days=1),
              closes_at=T0 + timedelta(days=30))
    session.commit()
    return {"pi": pi, "member": member, "viewer": viewer, "op": op, "alpha": alpha}


def test_skip_link_is_first_focusable_and_targets_main(api_client: Any,
                                                       people: dict[str, Any]) -> None:
    for html in (api_client.get("/login").text, _login(api_client, "pia").get("/").text):
        body = html.split("<body", 1)[1]
        first = re.search(r"<(a|button|input(?![^>]*type=\"hidden\")|select|textarea)\b[^>]*>",
                          body)
        assert first and 'href="#main"' in first.group(0), first
        assert "Skip to content" in body
        assert '<main id="main"' in body


def test_field_in_error_is_invalid_and_described_by_its_message(
        api_client: Any, people: dict[str, Any]) -> None:
    _login(api_client, "mem")
    page = api_client.get("/jobs/new?project=alpha").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    r = api_client.post("/jobs/new", data={
        "name": "train", "project": "alpha", "kind": "command", "command": "python3 t.py",
        "gpus": "two", "walltime": "1h", "qos": "normal", "idempotency_key": key,
        "csrf_token": _csrf(page)})
    assert r.status_code == 422
    gpus = re.search(r'<input id="f-gpus"[^>]*>', r.text)
    assert gpus and 'aria-invalid="true"' in gpus.group(0)
    assert 'aria-describedby="err-gpus"' in gpus.group(0)
    assert re.search(r'<span class="error" id="err-gpus"[^>]*>[^<]*whole number', r.text)
    name = re.search(r'<input id="f-name"[^>]*>', r.text)
    assert name and "aria-invalid" not in name.group(0)  # fields without errors stay clean


def test_node_drain_reason_has_an_accessible_name(api_client: Any,
                                                  people: dict[str, Any]) -> None:
    html = _login(api_client, "op").get("/ops/cluster").text
    reasons = re.findall(r'<input name="reason"[^>]*>', html)
    assert reasons and all("aria-label=" in i for i in reasons)


def test_actions_are_offered_only_to_who_may_take_them(api_client: Any,
                                                       people: dict[str, Any]) -> None:
    _login(api_client, "vie")  # a viewer of alpha: may look, not submit
    for path in ("/", "/projects/alpha", "/jobs"):
        html = api_client.get(path).text
        assert "alpha" in html and "Submit a job</a>" not in html, path
    assert "Write a proposal</a>" not in api_client.get("/proposals").text
    for path in ("/projects/alpha", "/jobs"):  # nor told to click a button it lacks
        assert "“Submit a job”" not in api_client.get(path).text, path
    _login(api_client, "mem")  # a member submits jobs but only the PI writes proposals
    for path in ("/", "/projects/alpha", "/jobs"):
        assert "Submit a job</a>" in api_client.get(path).text, path
    assert "Write a proposal</a>" not in api_client.get("/proposals").text
    _login(api_client, "pia")
    assert 'href="/jobs/new?project=alpha">Submit a job</a>' in \
        api_client.get("/projects/alpha").text
    assert 'href="/proposals/new">Write a proposal</a>' in api_client.get("/proposals").text


def test_empty_states_show_cli_commands_as_code(api_client: Any, session: Session) -> None:
    make_user(session, username="newbie", password_hash=_hash())
    session.commit()
    html = _login(api_client, "newbie").get("/").text
    empties = re.findall(r'<div class="empty" data-testid="empty">.*?</div>', html, re.S)
    assert any("<code>rechenwerk project create</code>" in e for e in empties), empties
    assert not any("`" in e for e in empties)
    assert "`" not in api_client.get("/proposals/new").text.split("<main", 1)[1]


def test_code_spans_escape_everything_else() -> None:
    from rechenwerk.web.rendering import code_spans

    assert str(code_spans("run `a <b>` & <i>x</i>")) == \
        "run <code>a &lt;b&gt;</code> &amp; &lt;i&gt;x&lt;/i&gt;"


def test_closing_a_call_needs_a_confirmation_step(api_client: Any, people: dict[str, Any],
                                                  session: Session) -> None:
    from rechenwerk.access.models import Call

    _login(api_client, "op")
    listing = api_client.get("/ops/calls").text
    assert 'href="/ops/calls/open-call/close"' in listing  # a link to the step, not a POST
    assert 'action="/ops/calls/open-call/close"' not in listing
    page = api_client.get("/ops/calls/open-call/close").text
    assert "Closing a call is final" in page and 'name="confirm" value="yes"' in page
    r = api_client.post("/ops/calls/open-call/close", data={"csrf_token": _csrf(page)},
                        follow_redirects=False)  # a stray or replayed post
    assert r.status_code == 422 and "was not closed" in r.text
    session.expire_all()
    call = session.scalar(select(Call).where(Call.slug == "open-call"))
    assert call is not None and call.closed_at is None
    session.rollback()
    r = api_client.post("/ops/calls/open-call/close",
                        data={"csrf_token": _csrf(page), "confirm": "yes"},
                        follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    assert session.scalar(select(Call.closed_at).where(Call.slug == "open-call")) is not None
    session.rollback()
    assert "already closed" in api_client.get("/ops/calls/open-call/close").text


def test_drains_resumes_and_cancels_are_audited_and_shown_readably(
        api_client: Any, people: dict[str, Any]) -> None:
    _login(api_client, "mem")
    page = api_client.get("/jobs/new?project=alpha").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    r = api_client.post("/jobs/new", data={
        "name": "train", "project": "alpha", "kind": "command", "command": "python3 t.py",
        "gpus": "1", "walltime": "1h", "qos": "normal", "idempotency_key": key,
        "csrf_token": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    detail = api_client.get(f"/jobs/{job_id}").text
    r = api_client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": _csrf(detail)},
                        follow_redirects=False)
    assert r.status_code == 303
    _login(api_client, "op")
    cluster = api_client.get("/ops/cluster").text
    node = re.search(r'action="/ops/nodes/([^/"]+)/drain"', cluster).group(1)  # type: ignore[union-attr]
    for action, data in (("drain", {"reason": "fan swap"}), ("resume", {})):
        r = api_client.post(f"/ops/nodes/{node}/{action}",
                            data={**data, "csrf_token": _csrf(cluster)}, follow_redirects=False)
        assert r.status_code == 303, r.text
    audit = api_client.get("/ops/audit").text
    rows = re.findall(r"<tr>(.*?)</tr>", audit, re.S)

    def row(action: str) -> str:
        # the action in words, its code beside (web/rendering.py AUDIT_ACTION_WORDS)
        found = [x for x in rows if f'<span class="mono small muted">{action}</span>' in x]
        assert len(found) == 1, (action, rows)
        return found[0]

    assert "mem" in row("job.cancel") and f"job {job_id}" in row("job.cancel")
    assert "cancelled a job" in row("job.cancel") and "drained a node" in row("node.drain")
    assert "<dd>pending → cancelled</dd>" in row("job.cancel")
    assert f"node {node}" in row("node.drain") and "<dd>fan swap</dd>" in row("node.drain")
    assert f"node {node}" in row("node.resume")
    for x in rows:  # no Python reprs of lists or dicts in any change
        assert not re.search(r"<dd>[\[{]", x), x


def test_audit_values_are_plain_text() -> None:
    from rechenwerk.web.rendering import audit_value

    assert audit_value({"gpu_hours": 100.0, "gpu_type": "A100"}) == \
        "gpu_hours: 100.0, gpu_type: A100"
    assert audit_value(["draft", "submitted"]) == "draft → submitted"
    assert audit_value(["a", "b", "c"]) == "a, b, c"
    assert audit_value(None) == "—" and audit_value(True) == "yes"
