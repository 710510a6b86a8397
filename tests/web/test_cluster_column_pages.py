"""Several clusters in the portal: the jobs list has a Cluster column only where jobs
carry clusters, and a job's page says where it runs and who chose."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from factories import T0, make_project, make_user
from portal_login import PASSWORD
from portal_login import password_hash as _hash
from rechenwerk.jobs.models import Job


def _job(session: Session, project_id: int, user_id: int, name: str, **kw: Any) -> int:
    job = Job(project_id=project_id, user_id=user_id, name=name, spec={}, state="completed",
              qos="normal", requested_qos="normal", over_budget=False, gpus=1,
              walltime_s=60, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
              started_at=T0, ended_at=T0 + timedelta(minutes=1), updated_at=T0, **kw)
    session.add(job)
    session.flush()
    return job.id


def _login(client: Any, username: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    client.post("/login", data={"username": username, "password": PASSWORD,
                                "csrf_token": csrf.group(1)})


def test_cluster_column_only_with_clusters(api_client: Any, session: Session) -> None:
    pi = make_user(session, username="pic", password_hash=_hash())
    project = make_project(session, pi=pi, slug="clus")
    plain = _job(session, project.id, pi.id, "plain")
    session.commit()
    _login(api_client, "pic")
    html = api_client.get("/jobs").text
    assert "<th>Cluster</th>" not in html and 'data-testid="job-cluster"' not in html
    assert 'data-testid="job-cluster-detail"' not in api_client.get(f"/jobs/{plain}").text
    routed = _job(session, project.id, pi.id, "routed", cluster="beta")
    named = _job(session, project.id, pi.id, "named", requested_cluster="alpha")
    session.commit()
    html = api_client.get("/jobs").text
    assert "<th>Cluster</th>" in html
    cells = re.findall(r'data-testid="job-cluster">([^<]*)<', html)
    assert sorted(cells) == ["alpha (named)", "beta", "—"]
    detail = api_client.get(f"/jobs/{routed}").text
    assert re.search(r'job-cluster-detail">beta \(chosen by the centre\)', detail)
    detail = api_client.get(f"/jobs/{named}").text
    assert re.search(r'job-cluster-detail">not yet chosen \(named by the job\)', detail)
