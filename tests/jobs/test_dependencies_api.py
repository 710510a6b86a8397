"""Dependencies through the faces: the REST API (a job of a project the submitter cannot
see is refused with the very response of a missing one), the job's details and the queue
with the reason, the portal's job page, and the CLI's --after-ok options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.access.security import hash_password
from rechenwerk.cli.jobs import load_spec_file
from rechenwerk.jobs.models import Job, JobDependency

SPEC = {"name": "train", "command": "python3 train.py", "gpus": 2, "walltime": "1h"}
PASSWORD = "correct-horse-battery"


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session, password_hash=hash_password(PASSWORD))
    other = make_user(session)
    project = make_project(session, pi=pi)
    hidden = make_project(session, pi=other)
    make_award(session, project, gpu_hours=100.0)
    make_award(session, hidden, gpu_hours=100.0)
    out = {"slug": project.slug, "hidden": hidden.slug, "pi_name": pi.username,
           "pi": bearer(make_token(session, pi)), "other": bearer(make_token(session, other))}
    session.commit()
    return out


def _post(client: TestClient, w: dict[str, Any], who: str, **kw: Any) -> Any:
    project = w["hidden"] if who == "other" else w["slug"]
    return client.post("/api/v1/jobs", json={**SPEC, "project": project, **kw},
                       headers=w[who])


def test_hidden_job_is_refused_like_a_missing_one(api_client: TestClient,
                                                  session: Session) -> None:
    w = _world(session)
    hidden = _post(api_client, w, "other").json()["id"]
    missing = hidden + 100
    r_hidden = _post(api_client, w, "pi", depends_on={"after_ok": [hidden]})
    r_missing = _post(api_client, w, "pi", depends_on={"after_ok": [missing]})
    assert r_hidden.status_code == r_missing.status_code == 404
    body_h, body_m = r_hidden.json(), r_missing.json()
    # Byte for byte the same apart from the id the submitter typed.
    assert body_h == {k: (re.sub(str(missing), str(hidden), v) if isinstance(v, str) else
                          v if k != "errors" else
                          [{**e, "message": e["message"].replace(str(missing), str(hidden))}
                           for e in v])
                      for k, v in body_m.items()}
    assert body_h["detail"] == f"job {hidden} not found"
    assert body_h["errors"][0]["field"] == "depends_on.after_ok[0]"
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert session.scalar(select(func.count()).select_from(JobDependency)) == 0

    bad = _post(api_client, w, "pi", depends_on={"after_ok": ["twelve"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].startswith("depends_on.after_ok")


def test_details_queue_and_portal_show_dependencies(api_client: TestClient,
                                                    session: Session) -> None:
    w = _world(session)
    train = _post(api_client, w, "pi", name="train").json()
    r = _post(api_client, w, "pi", name="evaluate", depends_on={"after_ok": [train["id"]]})
    assert r.status_code == 201, r.text
    evaluate = r.json()
    assert evaluate["reason_code"] == "dependency"
    shown = api_client.get(f"/api/v1/jobs/{evaluate['id']}", headers=w["pi"]).json()
    assert shown["dependencies"] == [{"kind": "after_ok", "job_id": train["id"],
                                      "state": "pending"}]
    assert shown["spec"]["depends_on"]["after_ok"] == [train["id"]]
    upstream = api_client.get(f"/api/v1/jobs/{train['id']}", headers=w["pi"]).json()
    assert upstream["dependents"] == [evaluate["id"]] and upstream["dependencies"] == []
    queue = api_client.get("/api/v1/queue", headers=w["pi"]).json()["items"]
    assert {j["id"]: j["reason_code"] for j in queue}[evaluate["id"]] == "dependency"
    # Balance: both pending jobs commit their GPU-hours (2 x 2 GPU-hours).
    bal = api_client.get(f"/api/v1/projects/{w['slug']}/balance", headers=w["pi"]).json()
    assert bal["committed_gpu_hours"] == 4.0

    # Portal: the job page lists what it waits for, with the reason.
    _portal_login(api_client, w["pi_name"])
    html = api_client.get(f"/jobs/{evaluate['id']}").text
    deps = re.search(r'data-testid="job-dependencies">(.*?)</td>', html)
    assert deps and f'after_ok <a href="/jobs/{train["id"]}">{train["id"]}</a> (pending)' \
        in deps.group(1)
    assert f"waiting for job {train['id']} (after_ok)" in html
    html = api_client.get(f"/jobs/{train['id']}").text
    assert f'href="/jobs/{evaluate["id"]}"' in html and 'data-testid="job-dependents"' in html


def _portal_login(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_portal_submit_form_takes_after_ok_and_refuses_hidden_jobs(
        api_client: TestClient, session: Session) -> None:
    w = _world(session)
    train = _post(api_client, w, "pi").json()["id"]
    hidden = _post(api_client, w, "other").json()["id"]
    _portal_login(api_client, w["pi_name"])

    def submit(after_ok: str) -> Any:
        page = api_client.get("/jobs/new")
        assert 'name="after_ok"' in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        return api_client.post("/jobs/new", data={
            "csrf_token": token.group(1), "name": "evaluate", "project": w["slug"],
            "kind": "command", "command": "python3 eval.py", "gpus": "1", "walltime": "1h",
            "qos": "normal", "after_ok": after_ok}, follow_redirects=False)

    refused = submit(str(hidden))
    assert refused.status_code == 422
    msg = re.search(r'data-testid="error-after_ok">([^<]*)<', refused.text)
    assert msg and f"job {hidden} not found" in msg.group(1)
    bad = submit("x")
    assert bad.status_code == 422 and 'data-testid="error-after_ok"' in bad.text
    ok = submit(f"{train}")
    assert ok.status_code == 303, ok.text
    job_id = int(ok.headers["location"].rsplit("/", 1)[1])
    shown = api_client.get(f"/api/v1/jobs/{job_id}", headers=w["pi"]).json()
    assert shown["dependencies"] == [{"kind": "after_ok", "job_id": train, "state": "pending"}]


def test_cli_after_options_extend_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "eval.yaml"
    spec.write_text("name: eval\nproject: p\ncommand: ['true']\ngpus: 1\nwalltime: 10m\n"
                    "depends_on: {after_ok: [3]}\n")
    doc = load_spec_file(spec, {}, {"after_ok": ["4", "5"], "after_any": [],
                                    "after_not_ok": ["6"]})
    assert doc["depends_on"] == {"after_ok": [3, "4", "5"], "after_not_ok": ["6"]}
    plain = load_spec_file(spec, {}, {"after_ok": [], "after_any": [], "after_not_ok": []})
    assert plain["depends_on"] == {"after_ok": [3]}
