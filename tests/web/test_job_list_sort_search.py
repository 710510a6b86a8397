"""Jobs lists sorted and searched by the database, in the portal and the API: any
sortable column either way, a name search whose wildcards mean themselves, an id search,
and a clear refusal of an unknown column."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from factories import T0, bearer, make_project, make_token, make_user
from portal_login import PASSWORD
from portal_login import password_hash as _hash
from rechenwerk.jobs.models import Job


def _ids(html: str) -> list[int]:
    table = html.split('data-testid="jobs-table"', 1)[1].split("</table>", 1)[0]
    return [int(i) for i in re.findall(r'<tr[^>]*>\s*<td><a href="/jobs/(\d+)"', table)]


def test_sort_and_search_in_the_portal_and_the_api(api_client: Any, session: Session) -> None:
    pi = make_user(session, username="pia", password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    ids = {}
    for k, (name, gpus) in enumerate([("sweep-a", 8), ("train_100%", 1), ("sweep-b", 4),
                                      ("eval", 2)]):
        job = Job(project_id=project.id, user_id=pi.id, name=name, spec={}, state="completed",
                  qos="normal", requested_qos="normal", over_budget=False, gpus=gpus,
                  walltime_s=60, attempt=1, attained_gpu_s=0.0,
                  submitted_at=T0 + timedelta(minutes=k), started_at=T0, ended_at=T0,
                  updated_at=T0)
        session.add(job)
        session.flush()
        ids[name] = job.id
    token = make_token(session, pi)
    session.commit()
    page = api_client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                    "csrf_token": csrf.group(1)})
    html = api_client.get("/jobs").text
    assert _ids(html) == sorted(ids.values(), reverse=True)  # newest first by default
    html = api_client.get("/jobs?sort=-gpus").text
    assert _ids(html) == [ids["sweep-a"], ids["sweep-b"], ids["eval"], ids["train_100%"]]
    assert 'aria-sort="descending"' in html
    assert _ids(api_client.get("/jobs?sort=name").text)[0] == ids["eval"]
    assert sorted(_ids(api_client.get("/jobs?q=sweep").text)) == [ids["sweep-a"],
                                                                    ids["sweep-b"]]
    assert _ids(api_client.get("/jobs?q=100%25").text) == [ids["train_100%"]]
    assert "No job matches" in api_client.get("/jobs?q=sweep_a").text  # "_" is no wildcard
    assert _ids(api_client.get(f"/jobs?q={ids['eval']}").text) == [ids["eval"]]
    r = api_client.get("/jobs?sort=password")
    assert r.status_code == 422 and "cannot sort jobs by" in r.text
    api = api_client.get("/api/v1/jobs", params={"sort": "gpus", "q": "sweep"},
                         headers=bearer(token)).json()
    assert [j["name"] for j in api["items"]] == ["sweep-b", "sweep-a"]
    bad = api_client.get("/api/v1/jobs", params={"sort": "nope"}, headers=bearer(token))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sort"


def test_proposals_sorted_and_searched(api_client: Any, session: Session) -> None:
    from factories import make_call
    from rechenwerk.access.models import Proposal

    pi = make_user(session, username="pib", password_hash=_hash())
    project = make_project(session, pi=pi, slug="beta")
    call = make_call(session)
    for title, hours in (("Vision at scale", 500.0), ("Speech 100% open", 9000.0),
                         ("Vision small", 50.0)):
        session.add(Proposal(call_id=call.id, project_id=project.id, applicant_user_id=pi.id,
                             title=title, abstract="", justification="", gpu_type="A100-80GB",
                             requested_gpu_hours=hours, state="draft", created_at=T0))
    session.commit()
    page = api_client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    api_client.post("/login", data={"username": "pib", "password": PASSWORD,
                                    "csrf_token": csrf.group(1)})

    def titles(url: str) -> list[str]:
        html = api_client.get(url).text
        return re.findall(r'<td><a href="/proposals/\d+">([^<]+)</a></td>\s*<td>beta', html)

    assert titles("/proposals?sort=-gpu_hours") == ["Speech 100% open", "Vision at scale",
                                                    "Vision small"]
    assert titles("/proposals?q=vision&sort=gpu_hours") == ["Vision small", "Vision at scale"]
    assert titles("/proposals?q=100%25") == ["Speech 100% open"]
    assert "No proposal matches" in api_client.get("/proposals?q=nothing").text
    assert api_client.get("/proposals?sort=abstract").status_code == 422
    long = api_client.get("/proposals", params={"q": "v" * 201})
    assert long.status_code == 422 and "at most 200" in long.text


def test_the_project_filter_is_a_field_with_suggestions(api_client: Any,
                                                        session: Session) -> None:
    """A search field with the user's own projects as suggestions (not a <select> of
    every project of the centre); a slug that names no project the user may see is
    said beside the field (404, no hint whether it exists)."""
    pi = make_user(session, username="pia", password_hash=_hash())
    make_project(session, pi=pi, slug="alpha")
    make_project(session, slug="beta")  # someone else's
    session.commit()
    page = api_client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                    "csrf_token": csrf.group(1)})
    page = api_client.get("/jobs").text
    assert '<option value="alpha">' in page and "beta" not in page
    assert '<input id="f-project" type="search" name="project"' in page
    assert '<datalist id="job-project-options">' in page
    for slug in ("no-such-project", "beta"):  # the same answer: existence does not leak
        r = api_client.get(f"/jobs?project={slug}")
        assert r.status_code == 404
        assert f"no project '{slug}' you may see" in r.text.replace("&#39;", "'")
        assert 'aria-invalid="true"' in r.text
