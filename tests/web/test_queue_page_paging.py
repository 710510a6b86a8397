"""The operator's queue page in pages of 100 with a search: positions are the whole
queue's (the scheduler's order), the search only picks rows, and the pager moves on."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from factories import T0, make_award, make_project, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.jobs.models import Job


def _rows(html: str) -> list[tuple[int, int]]:
    return [(int(p), int(j)) for p, j in re.findall(
        r'<tr>\s*<td class="num">(\d+)</td>\s*<td><a href="/jobs/(\d+)"', html)]


def test_queue_pages_and_search_keep_the_whole_queues_positions(
        api_client: Any, session: Session) -> None:
    make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia")
    project = make_project(session, pi=pi, slug="alpha")
    make_award(session, project, gpu_hours=1e6)
    for i in range(230):
        session.add(Job(project_id=project.id, user_id=pi.id, name=f"sweep-{i}", spec={},
                        state="pending", qos="normal", requested_qos="normal",
                        over_budget=False, gpus=1, walltime_s=3600, attempt=0,
                        attained_gpu_s=0.0, submitted_at=T0, updated_at=T0))
    session.commit()
    client = _login(api_client, "op")
    first = client.get("/ops/queue").text
    rows = _rows(first)
    assert len(rows) == 100 and [p for p, _ in rows] == list(range(1, 101))
    assert "230 waiting jobs · page 1 of 3" in first
    third = _rows(client.get("/ops/queue?page=3").text)
    assert [p for p, _ in third] == list(range(201, 231))
    assert _rows(client.get("/ops/queue?page=99").text) == third  # clamped to the last
    target = rows[41][1]
    found = client.get(f"/ops/queue?q=sweep-{target - rows[0][1]}").text
    hits = [r for r in _rows(found) if r[1] == target]
    assert hits == [(42, target)]  # its place in the whole queue, not in the search
    assert "No waiting job matches" in client.get("/ops/queue?q=nothing-like-it").text
    assert client.get("/ops/queue?page=0").status_code == 422
