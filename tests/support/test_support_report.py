"""The support report: counts by kind, state and project, and the medians and p90s of
the time to the first operator answer and to close (numpy's linear percentiles), for
the requests its reader may see; through the service and the API (JSON and CSV)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import T0, bearer, make_project, make_token, make_user
from rechenwerk.errors import InvalidInput
from rechenwerk.support import service as support
from rechenwerk.support.report import support_report

H = timedelta(hours=1)


def _history(session: Session) -> dict[str, Any]:
    op = make_user(session, operator=True)
    pi = make_user(session)
    member = make_user(session)
    other = make_user(session)
    make_project(session, pi=pi, slug="alpha", members={member: "member"})
    make_project(session, pi=other, slug="beta")
    # Four porting requests answered after 1, 2, 3 and 10 hours; three closed after
    # 4, 6 and 20 hours; one onboarding request never answered.
    for i, (answer_h, close_h) in enumerate(((1, 4), (2, 6), (3, None), (10, 20))):
        opened = T0 + i * 24 * H
        req = support.open_request(
            session,
            member,
            project="alpha",
            kind="porting",
            subject=f"r{i}",
            body="help",
            now=opened,
        )
        support.reply(session, op, req, body="answer", now=opened + answer_h * H)
        support.reply(session, op, req, body="again", now=opened + (answer_h + 1) * H)
        if close_h is not None:
            support.close(session, member, req, now=opened + close_h * H)
    support.open_request(
        session, other, project="beta", kind="onboarding", subject="new", body="hi", now=T0 + 5 * H
    )
    support.open_request(
        session,
        other,
        project="beta",
        kind="data",
        subject="too late",
        body="x",
        now=T0 + 40 * 24 * H,
    )  # outside the range
    return {"op": op, "pi": pi, "member": member, "other": other}


def test_counts_and_response_times(session: Session) -> None:
    u = _history(session)
    end = T0 + 30 * 24 * H
    table = support_report(session, u["op"], start=T0, end=end, by="kind")
    rows = {r["kind"]: r for r in table.rows}
    assert list(rows) == ["onboarding", "porting"]  # the kinds' order, only those present
    porting = rows["porting"]
    assert (porting["requests"], porting["not_closed"], porting["answered"], porting["closed"]) == (
        4,
        1,
        4,
        3,
    )
    assert porting["median_first_answer_h"] == pytest.approx(2.5)  # of 1, 2, 3, 10
    assert porting["p90_first_answer_h"] == pytest.approx(7.9)  # 3 + 0.7 * 7
    assert porting["median_close_h"] == pytest.approx(6.0)  # of 4, 6, 20
    assert porting["p90_close_h"] == pytest.approx(17.2)  # 6 + 0.8 * 14
    assert rows["onboarding"]["answered"] == 0
    assert rows["onboarding"]["median_first_answer_h"] is None
    assert table.totals["requests"] == 5
    by_state = {
        r["state"]: r["requests"]
        for r in support_report(session, u["op"], start=T0, end=end, by="state").rows
    }
    assert by_state == {"open": 1, "answered": 1, "closed": 3}
    # Others count only what they may see: the PI their project's, the stranger theirs.
    assert [
        (r["project"], r["requests"])
        for r in support_report(session, u["pi"], start=T0, end=end, by="project").rows
    ] == [("alpha", 4)]
    assert [
        (r["project"], r["requests"])
        for r in support_report(session, u["other"], start=T0, end=end, by="project").rows
    ] == [("beta", 1)]
    with pytest.raises(InvalidInput) as e:
        support_report(session, u["op"], start=T0, end=end, by="month")
    assert e.value.field == "by"


def test_report_api_json_and_csv(api_client: Any, session: Session) -> None:
    u = _history(session)
    h = bearer(make_token(session, u["op"]))
    params = {"from": T0.isoformat(), "to": (T0 + 30 * 24 * H).isoformat(), "by": "kind"}
    r = api_client.get("/api/v1/reports/support", params=params, headers=h)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["report"] == "support" and data["totals"]["closed"] == 3
    assert [c["label"] for c in data["columns"]][5] == "Median first answer (hours)"
    csv = api_client.get("/api/v1/reports/support", params=params | {"format": "csv"}, headers=h)
    assert csv.text.splitlines()[2].startswith("porting,4,1,4,3,2.500,7.900,6.000,17.200")
    bad = api_client.get("/api/v1/reports/support", params={"by": "week"}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "by"
