"""Portal pages through the ASGI app (no browser), on SQLite and PostgreSQL: sessions and
CSRF, forms that keep input and show field errors, empty states, and authorisation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_call, make_org, make_project, make_user
from portal_login import PASSWORD, csrf, login
from portal_login import password_hash as _hash
from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.access.proposals import visible_proposal
from rechenwerk.access.review_pipeline import Deadlines, confirm_ranking
from rechenwerk.access.security import hash_password
from rechenwerk.access.users import get_user
from rechenwerk.jobs.models import Job


def post(client: Any, path: str, data: dict[str, str], page: str | None = None) -> Any:
    token = csrf(client.get(page or path).text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def error_of(html: str, name: str) -> str:
    m = re.search(rf'data-testid="error-{re.escape(name)}">([^<]*)<', html)
    return m.group(1) if m else ""


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    uni = make_org(session, name="Uni A", kind="university")
    sme = make_org(session, name="SME B", kind="sme")
    pi = make_user(session, username="pia", org=uni, password_hash=_hash())
    member = make_user(session, username="mem", org=uni, password_hash=_hash())
    other_pi = make_user(session, username="pib", org=sme, password_hash=_hash())
    op = make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    reviewer = make_user(session, username="rev", org=sme, reviewer=True,
                         password_hash=_hash())
    lonely = make_user(session, username="lonely", org=uni, password_hash=_hash())
    alpha = make_project(session, pi=pi, slug="alpha", members={member: "member"})
    beta = make_project(session, pi=other_pi, slug="beta")
    make_award(session, alpha, gpu_hours=100.0, starts_at=T0 - timedelta(days=1))
    make_award(session, beta, gpu_hours=100.0, starts_at=T0 - timedelta(days=1))
    make_call(session, slug="open-call", opens_at=T0 - timedelta(days=1),
              closes_at=T0 + timedelta(days=30))
    beta_job = Job(project_id=beta.id, user_id=other_pi.id, name="secret", spec={},
                   state="completed", qos="normal", requested_qos="normal", over_budget=False,
                   gpus=1, walltime_s=60, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
                   started_at=T0, ended_at=T0, updated_at=T0)
    session.add(beta_job)
    session.commit()
    return {"pi": pi, "member": member, "op": op, "reviewer": reviewer, "lonely": lonely,
            "alpha": alpha, "beta": beta, "beta_job": beta_job.id}


def test_portal_login_is_throttled_after_repeated_failures(
        api_client: Any, world: dict[str, Any]) -> None:
    from rechenwerk.access.security import LOGIN_MAX_FAILURES

    page = api_client.get("/login")
    for _ in range(LOGIN_MAX_FAILURES):
        r = api_client.post("/login", data={"username": "pia", "password": "wrong",
                                            "csrf_token": csrf(page.text)})
        assert r.status_code == 401
    r = api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                        "csrf_token": csrf(page.text)},
                        follow_redirects=False)
    assert r.status_code == 429
    assert "Too many failed logins for &#39;pia&#39;: try again in" in r.text


def test_login_session_cookie_and_redirects(api_client: Any, world: dict[str, Any]) -> None:
    r = api_client.get("/jobs?state=pending", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Dpending"
    r = api_client.get("/jobs", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.headers["HX-Redirect"].startswith("/login")
    page = api_client.get("/login")
    r = api_client.post("/login", data={"username": "pia", "password": "wrong",
                                        "csrf_token": csrf(page.text), "next": "/jobs"})
    assert r.status_code == 401 and 'value="pia"' in r.text  # input kept
    r = api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                        "csrf_token": csrf(page.text),
                                        "next": "//evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # never off-site
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert api_client.get("/").status_code == 200
    # A tampered cookie is an anonymous session.
    value = api_client.cookies.get("rw_session")
    api_client.cookies.set("rw_session", value[:-3] + "abc")
    assert api_client.get("/", follow_redirects=False).status_code == 303


def test_post_without_csrf_token_is_refused(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    r = api_client.post("/projects/alpha/members", data={"username": "lonely"})
    assert r.status_code == 403 and "security token" in r.text
    r = api_client.post("/projects/alpha/members", data={"username": "lonely"},
                        headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403


def test_password_change_ends_sessions(api_client: Any, world: dict[str, Any],
                                       session: Session) -> None:
    login(api_client, "pia")
    user = session.get(User, world["pi"].id)
    user.password_hash = hash_password("a-new-password-1")
    session.commit()
    assert api_client.get("/", follow_redirects=False).status_code == 303


def test_dashboard_balance_and_empty_state(api_client: Any, world: dict[str, Any]) -> None:
    html = login(api_client, "pia").get("/").text
    assert 'data-testid="available-alpha" data-value="100.0"' in html
    assert "GPU-hours remaining" in html  # the burn-down chart
    assert "beta" not in re.sub(r"<script.*?</script>", "", html)
    html = login(api_client, "lonely").get("/").text
    assert "You are not a member of any project yet." in html
    assert "You have not submitted a job yet." in html


def test_members_form_errors_and_pi_only(api_client: Any, world: dict[str, Any],
                                         session: Session) -> None:
    login(api_client, "pia")
    r = post(api_client, "/projects/alpha/members", {"username": "nobody", "role": "member"},
             page="/projects/alpha")
    assert r.status_code == 422
    assert "not found" in error_of(r.text, "username")
    assert 'value="nobody"' in r.text
    r = post(api_client, "/projects/alpha/members", {"username": "lonely", "role": "viewer"},
             page="/projects/alpha")
    assert r.status_code == 303
    assert session.get(ProjectMembership, (world["alpha"].id, world["lonely"].id)).role == \
        "viewer"
    session.rollback()  # SQLite: end the read transaction so the server may write
    r = post(api_client, "/projects/alpha/members/lonely/remove", {}, page="/projects/alpha")
    assert r.status_code == 303
    assert session.get(ProjectMembership, (world["alpha"].id, world["lonely"].id)) is None
    session.rollback()
    login(api_client, "mem")  # a member, not the PI
    r = post(api_client, "/projects/alpha/members", {"username": "lonely", "role": "member"},
             page="/projects/alpha")
    assert r.status_code == 403 and "Ask the project&#39;s PI" in r.text


def test_submit_form_field_errors_budget_and_idempotency(api_client: Any,
                                                         world: dict[str, Any],
                                                         session: Session) -> None:
    login(api_client, "mem")
    page = api_client.get("/jobs/new?project=alpha").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    base = {"name": "train", "project": "alpha", "kind": "command", "command": "python3 t.py",
            "gpus": "1", "walltime": "1h", "qos": "normal", "idempotency_key": key,
            "csrf_token": csrf(page)}
    r = api_client.post("/jobs/new", data={**base, "walltime": "soon", "gpus": "two"})
    assert r.status_code == 422
    assert "whole number" in error_of(r.text, "gpus")
    r = api_client.post("/jobs/new", data={**base, "walltime": "soon"})
    assert "not a duration" in error_of(r.text, "walltime")
    assert 'value="train"' in r.text and "python3 t.py" in r.text  # input kept
    r = api_client.post("/jobs/new", data={**base, "env": "NOEQUALS"})
    assert "KEY=VALUE" in error_of(r.text, "env")
    r = api_client.post("/jobs/new", data={**base, "gpus": "16", "walltime": "48h"})
    assert r.status_code == 422  # the centre (2x8 GPUs) or the budget refuses it
    r = api_client.post("/jobs/new", data={**base, "gpus": "8", "walltime": "47h"})
    assert r.status_code == 422 and "GPU-hours available" in r.text  # 376 > 100
    r = api_client.post("/jobs/new", data=base, follow_redirects=False)
    assert r.status_code == 303
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    again = api_client.post("/jobs/new", data=base, follow_redirects=False)
    assert again.headers["location"] == f"/jobs/{job_id}"  # a double submit: same job
    assert session.scalar(select(func.count()).select_from(Job).where(
        Job.project_id == world["alpha"].id)) == 1
    session.rollback()
    detail = api_client.get(f"/jobs/{job_id}").text
    assert "waiting for the next scheduling cycle" in detail
    assert "No log yet" in detail
    # Its place in the core's order and its priority term by term (as sprio).
    assert re.search(r"Queue position:</strong> \d+ of \d+, by multifactor priority", detail)
    assert "+ fair share" in detail


def test_other_projects_are_not_found(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    for path in (f"/jobs/{world['beta_job']}", "/projects/beta",
                 "/projects/beta/burndown/1.csv", "/jobs?project=beta"):
        r = api_client.get(path)
        assert r.status_code == 404, path
        assert "text/html" in r.headers["content-type"]
    assert "secret" not in api_client.get("/jobs").text
    assert api_client.get("/ops/cluster").status_code == 403
    assert api_client.get("/ops/audit").status_code == 403
    assert api_client.get("/reviews").status_code == 403


def test_proposal_form_keeps_input_then_submits(api_client: Any,
                                                world: dict[str, Any]) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    call_id = re.search(r'<option value="(\d+)"', page).group(1)
    data = {"call": call_id, "project": "alpha", "title": "", "gpu_type": "A100-80GB",
            "requested_gpu_hours": "lots", "abstract": "We train.", "action": "submit",
            "csrf_token": csrf(page)}
    r = api_client.post("/proposals/new", data=data)
    assert r.status_code == 422
    assert "must be a number" in error_of(r.text, "requested_gpu_hours")
    assert "required" in error_of(r.text, "title")
    assert "We train." in r.text
    r = api_client.post("/proposals/new", data={**data, "title": "LLM",
                                                "requested_gpu_hours": "1,500"},
                        follow_redirects=False)
    assert r.status_code == 303
    detail = api_client.get(r.headers["location"]).text
    assert "submitted" in detail and "1,500" in detail


def test_training_estimate_fragment(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    token = csrf(api_client.get("/proposals/new").text)
    r = api_client.post("/proposals/estimate", data={
        "est_params": "7e9", "est_tokens": "", "est_gpus": "64", "gpu_type": "A100-80GB",
        "csrf_token": token})
    assert r.status_code == 200 and "GPU-hours" in r.text
    assert "compute-optimal" in r.text  # 20 tokens per parameter when none are given
    r = api_client.post("/proposals/estimate", data={
        "est_params": "seven", "est_gpus": "0", "gpu_type": "A100-80GB", "csrf_token": token})
    assert "must be a number" in r.text and "at least 1" in r.text


def test_reviewer_and_operator_flow(api_client: Any, world: dict[str, Any],
                                    session: Session) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    call_id = re.search(r'<option value="(\d+)"', page).group(1)
    r = api_client.post("/proposals/new", data={
        "call": call_id, "project": "alpha", "title": "Climate", "gpu_type": "A100-80GB",
        "requested_gpu_hours": "50", "action": "submit", "csrf_token": csrf(page)},
        follow_redirects=False)
    pid = int(r.headers["location"].rsplit("/", 1)[1])
    login(api_client, "op")
    html = api_client.get(f"/proposals/{pid}").text
    assert "rev" in html and "none" in html  # reviewer from another organisation
    r = post(api_client, f"/proposals/{pid}/assign", {"reviewer": "rev"},
             page=f"/proposals/{pid}")
    assert r.status_code == 303
    login(api_client, "rev")
    page = api_client.get(f"/reviews/{pid}").text
    assert "No conflict of interest" in page and 'data-testid="invitation-form"' in page
    assert "review-form" not in page  # the invitation is answered first
    r = post(api_client, f"/reviews/{pid}/invitation", {"action": "decline"},
             page=f"/reviews/{pid}")
    assert r.status_code == 422 and "say why" in error_of(r.text, "reason")
    r = post(api_client, f"/reviews/{pid}/invitation", {"action": "accept"},
             page=f"/reviews/{pid}")
    assert r.status_code == 303
    assert 'data-testid="review-form"' in api_client.get(f"/reviews/{pid}").text
    r = post(api_client, f"/reviews/{pid}", {"technical_score": "9", "scientific_score": "4"})
    assert r.status_code == 422 and "1..5" in error_of(r.text, "technical_score")
    r = post(api_client, f"/reviews/{pid}", {"technical_score": "5", "scientific_score": "4",
                                             "comment": "Good"})
    assert r.status_code == 303
    login(api_client, "op")
    r = post(api_client, f"/proposals/{pid}/decide", {"decision": "accepted", "comment": "ok"},
             page=f"/proposals/{pid}")
    assert r.status_code == 409 and "eligibility step" in r.text  # the checks come first
    page = api_client.get(f"/proposals/{pid}").text
    assert 'data-testid="assessment-form"' in page and "Record the eligibility check" in page
    r = post(api_client, f"/proposals/{pid}/assess", {"step": "eligibility",
                                                      "outcome": "fail"},
             page=f"/proposals/{pid}")
    assert r.status_code == 422 and "say why" in error_of(r.text, "note")
    for step in ("eligibility", "technical"):
        r = post(api_client, f"/proposals/{pid}/assess", {"step": step, "outcome": "pass",
                                                          "note": "fine"},
                 page=f"/proposals/{pid}")
        assert r.status_code == 303, r.text
    page = api_client.get(f"/proposals/{pid}").text
    assert "assessment-form" not in page and "(now: right to reply)" in page
    login(api_client, "pia")
    page = api_client.get(f"/proposals/{pid}").text
    assert 'data-testid="reply-form"' in page and "Good" in page  # the review, no name
    r = post(api_client, f"/proposals/{pid}/reply", {"text": " "}, page=f"/proposals/{pid}")
    assert r.status_code == 422 and "write the reply" in error_of(r.text, "text")
    r = post(api_client, f"/proposals/{pid}/reply", {"text": "We agree."},
             page=f"/proposals/{pid}")
    assert r.status_code == 303
    login(api_client, "op")
    page = api_client.get(f"/proposals/{pid}").text
    assert "(now: ranking)" in page and "We agree." in page
    op_user = get_user(session, "op")  # the ranking by the service (its page: the browser walk)
    confirm_ranking(session, op_user, visible_proposal(session, op_user, pid).call,
                    now=datetime.now(UTC), deadlines=Deadlines(today=datetime.now(UTC).date()))
    session.commit()
    page = api_client.get(f"/proposals/{pid}").text
    assert "(now: decision)" in page
    r = post(api_client, f"/proposals/{pid}/decide", {"decision": "accepted",
                                                      "granted_gpu_hours": "80"},
             page=f"/proposals/{pid}")
    assert r.status_code == 422 and "at most the 50" in error_of(r.text, "granted_gpu_hours")
    r = post(api_client, f"/proposals/{pid}/decide", {"decision": "accepted", "comment": "ok",
                                                      "granted_gpu_hours": "40"},
             page=f"/proposals/{pid}")
    assert r.status_code == 303
    page = api_client.get(f"/proposals/{pid}").text
    assert 'data-testid="decision-letter"' in page and "a partial award, 80%" in page
    r = post(api_client, "/ops/awards", {"project": "alpha", "proposal": str(pid),
                                         "gpu_hours": "abc", "starts_at": "2026-01-01",
                                         "period_count": "2", "period_months": "3"},
             page="/ops/calls")
    assert r.status_code == 422 and "must be a number" in error_of(r.text, "gpu_hours")
    r = post(api_client, "/ops/awards", {"project": "alpha", "proposal": str(pid),
                                         "gpu_hours": "50", "starts_at": "2026-01-01",
                                         "period_count": "2", "period_months": "3"},
             page="/ops/calls")
    assert r.status_code == 422  # more than the 40 the decision granted
    assert "exceed the 40 GPU-hours" in error_of(r.text, "gpu_hours")
    r = post(api_client, "/ops/awards", {"project": "alpha", "proposal": str(pid),
                                         "gpu_hours": "40", "starts_at": "2026-01-01",
                                         "period_count": "2", "period_months": "3"},
             page="/ops/calls")
    assert r.status_code == 303
    assert "40 GPU-hours" in api_client.get("/ops/calls").text
    r = post(api_client, "/ops/calls", {"slug": "Bad Slug", "title": "x",
                                        "access_mode": "research", "opens_at": "2026-02-01",
                                        "closes_at": "2026-01-01"}, page="/ops/calls")
    assert r.status_code == 422 and "Bad Slug" in r.text
    assert "audit" in api_client.get("/ops/audit").text.lower()


def test_settings_and_static_assets(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    r = post(api_client, "/settings", {"job_failed": "on", "low_balance_percent": "200"})
    assert r.status_code == 422 and "between 0 and 100" in r.text
    r = post(api_client, "/settings", {"job_failed": "on", "low_balance_percent": "20"})
    assert r.status_code == 303
    html = api_client.get("/settings").text
    assert 'name="job_failed" checked' in html and 'value="20"' in html
    js = api_client.get("/static/htmx.min.js")
    assert js.status_code == 200 and "Zero-Clause BSD" in js.text[:400]
    assert api_client.get("/static/..%2Fsession.py").status_code == 404
    # Nothing is loaded from another host.
    assert not re.search(r'(src|href)="(https?:)?//', api_client.get("/").text)


def test_reports_page_and_csv(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "op")
    html = api_client.get("/reports?from=2025-12-01&to=2026-01-01&by=kind").text
    assert "GPU-hours by organisation kind" in html
    assert "No settled usage in this range." in html  # the empty state says what to do
    csv = api_client.get("/reports/usage.csv?from=2025-12-01&to=2026-01-01&by=org")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "Organisation,Kind,GPU-hours,Runs,Share of GPU-hours"
    svg = api_client.get("/reports/chart/waits.svg?from=2025-12-01&to=2025-12-31")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "no data yet" in svg.text
    assert api_client.get("/reports?from=yesterday").status_code == 422
    assert api_client.get("/reports/colour.csv").status_code == 404


def test_projects_listed_for_operator_only_in_ops(api_client: Any, world: dict[str, Any],
                                                  session: Session) -> None:
    login(api_client, "op")
    html = api_client.get("/jobs").text
    assert "secret" in html  # operators see every project's jobs
    assert session.scalar(select(func.count()).select_from(Project)) == 2


def test_operator_outbox_page(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "op")
    html = api_client.get("/ops/notifications").text
    assert "No notification here." in html and "log only" in html
    assert api_client.get("/ops/notifications?status=lost").status_code == 422
    login(api_client, "pia")
    assert api_client.get("/ops/notifications").status_code == 403


def test_operator_queue_page_in_core_order(api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "mem")
    page = api_client.get("/jobs/new?project=alpha").text
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    r = api_client.post("/jobs/new", follow_redirects=False, data={
        "name": "waits", "project": "alpha", "kind": "command", "command": "python3 t.py",
        "gpus": "1", "walltime": "1h", "qos": "normal", "idempotency_key": key,
        "csrf_token": csrf(page)})
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    api_client.post("/logout", data={"csrf_token": csrf(api_client.get("/").text)})
    login(api_client, "op")
    html = api_client.get("/ops/queue").text
    assert "by multifactor priority" in html and "queue-table" in html
    row = re.search(r"<tr>\s*<td class=\"num\">(\d+)</td>\s*<td><a href=\"/jobs/"
                    rf"{job_id}\"", html)
    assert row and row.group(1) == "1"  # the only pending job heads the queue
    assert "+ fair share" in html  # its priority, term by term
