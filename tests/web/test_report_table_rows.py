"""The reports page shows the first rows of a long table (a row per project is 1,000 rows
at a large centre) and links its CSV, which keeps every row."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.web.pages import reports as report_pages


def _table(html: str, name: str) -> str:
    m = re.search(rf'data-testid="table-{name}">(.*?)</table>', html, re.S)
    assert m, name
    return m.group(1)


def test_long_tables_show_their_first_rows_and_link_the_full_csv(
        api_client: Any, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(session, username="op", operator=True, password_hash=_hash())
    for slug, hours in (("small", 10.0), ("large", 300.0), ("middle", 100.0)):
        project = make_project(session, pi=make_user(session), slug=slug)
        make_award(session, project, gpu_hours=1e4)
        session.add(UsageRecord(project_id=project.id, gpus=8, gpu_hours=hours,
                                gpu_type="A100-80GB", source="local",
                                started_at=T0 - timedelta(days=2),
                                ended_at=T0 - timedelta(days=1), created_at=T0))
    session.commit()
    monkeypatch.setattr(report_pages, "TABLE_ROWS", 2)
    client = _login(api_client, "op")
    html = client.get("/reports?from=2025-12-01&to=2026-01-01&by=project").text
    usage = _table(html, "usage")
    assert "large" in usage and "middle" in usage and "small" not in usage  # by GPU-hours
    note = re.search(r'data-testid="table-usage-cut">(.*?)</p>', html, re.S)
    assert note and "The first 2 of 3 rows" in note.group(1)
    link = re.search(r'href="([^"]+)" download>all 3 as CSV', note.group(1))
    assert link and link.group(1).startswith("/reports/usage.csv?")
    csv = client.get(link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and {"small", "middle", "large"} <= set(
        line.split(",")[0] for line in csv.text.splitlines()[1:])
    assert "small" not in _table(html, "energy") and 'data-testid="table-energy-cut"' in html
    # a short table is whole, without the note
    monkeypatch.setattr(report_pages, "TABLE_ROWS", 25)
    html = client.get("/reports?from=2025-12-01&to=2026-01-01&by=project").text
    assert "small" in _table(html, "usage") and "table-usage-cut" not in html
