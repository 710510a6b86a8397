"""The support API (``/api/v1/support/requests``) on SQLite and PostgreSQL: the whole
conversation, 404 for people who may not see a request, problems naming each field,
409 for impossible transitions, and the audit entries through the audit API."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from factories import bearer, make_project, make_token, make_user

BASE = "/api/v1/support/requests"


def _people(session: Session) -> dict[str, dict[str, str]]:
    op = make_user(session, username="sam", operator=True)
    pi = make_user(session, username="paula")
    member = make_user(session, username="mika")
    viewer = make_user(session, username="vik")
    stranger = make_user(session, username="stan")
    make_project(session, pi=pi, slug="vision", members={member: "member", viewer: "viewer"})
    return {
        name: bearer(make_token(session, u))
        for name, u in (
            ("op", op),
            ("pi", pi),
            ("member", member),
            ("viewer", viewer),
            ("stranger", stranger),
        )
    }


def _open(client: Any, headers: dict[str, str], **over: Any) -> Any:
    body = {
        "project": "vision",
        "kind": "onboarding",
        "subject": "First job",
        "body": "How do I submit?",
    } | over
    return client.post(BASE, json=body, headers=headers)


def test_conversation_through_the_api(api_client: Any, session: Session) -> None:
    h = _people(session)
    r = _open(api_client, h["member"])
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["id"]
    assert (req["state"], req["requester"], req["project"]) == ("open", "mika", "vision")
    assert [m["body"] for m in req["messages"]] == ["How do I submit?"]

    r = api_client.post(f"{BASE}/{rid}/assign", json={}, headers=h["op"])
    assert r.status_code == 200 and (r.json()["state"], r.json()["assignee"]) == ("assigned", "sam")
    r = api_client.post(
        f"{BASE}/{rid}/replies", json={"body": "rechenwerk submit job.yaml"}, headers=h["op"]
    )
    assert r.status_code == 201 and r.json()["state"] == "answered"
    assert r.json()["first_answered_at"] is not None
    r = api_client.post(f"{BASE}/{rid}/replies", json={"body": "Thanks!"}, headers=h["pi"])
    assert r.json()["state"] == "assigned"
    r = api_client.post(f"{BASE}/{rid}/close", json={"comment": "Done."}, headers=h["member"])
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert [m["author"] for m in r.json()["messages"]] == ["mika", "sam", "paula", "mika"]
    again = api_client.post(f"{BASE}/{rid}/close", headers=h["op"])
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    answer_closed = api_client.post(f"{BASE}/{rid}/replies", json={"body": "more"}, headers=h["op"])
    assert answer_closed.status_code == 409 and "reopen" in answer_closed.json()["hint"]
    r = api_client.post(f"{BASE}/{rid}/reopen", headers=h["member"])
    assert r.status_code == 200 and r.json()["state"] == "assigned"

    listed = api_client.get(
        BASE, params={"state": "assigned", "kind": "onboarding"}, headers=h["op"]
    ).json()
    assert [x["id"] for x in listed["items"]] == [rid] and listed["items"][0]["messages"] is None
    audit = api_client.get(
        "/api/v1/audit", params={"entity": "support_request"}, headers=h["op"]
    ).json()["items"]
    assert [e["action"] for e in reversed(audit)] == [
        "support.open",
        "support.assign",
        "support.answer",
        "support.reply",
        "support.close",
        "support.reopen",
    ]


def test_others_get_404_and_operators_alone_assign(api_client: Any, session: Session) -> None:
    h = _people(session)
    rid = _open(api_client, h["member"]).json()["id"]
    for who in ("viewer", "stranger"):
        for method, path in (
            ("GET", f"{BASE}/{rid}"),
            ("POST", f"{BASE}/{rid}/replies"),
            ("POST", f"{BASE}/{rid}/close"),
            ("POST", f"{BASE}/{rid}/reopen"),
        ):
            kw: dict[str, Any] = {"json": {"body": "x"}} if path.endswith("replies") else {}
            r = api_client.request(method, path, headers=h[who], **kw)
            assert r.status_code == 404, (who, path, r.text)
            assert r.json()["errors"][0]["field"] == "request"
        assert api_client.get(BASE, headers=h[who]).json()["total"] == 0
    assert api_client.get(f"{BASE}/999999", headers=h["op"]).status_code == 404
    assert api_client.get(f"{BASE}/{rid}", headers=h["pi"]).status_code == 200
    denied = api_client.post(f"{BASE}/{rid}/assign", json={"assignee": "sam"}, headers=h["pi"])
    assert denied.status_code == 403
    bad = api_client.post(f"{BASE}/{rid}/assign", json={"assignee": "mika"}, headers=h["op"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "assignee"


def test_problems_name_each_field(api_client: Any, session: Session) -> None:
    h = _people(session)
    r = _open(api_client, h["member"], kind="gpus", subject="", body="x" * 20_001)
    assert r.status_code == 422
    problem = r.json()
    assert [e["field"] for e in problem["errors"]] == ["kind", "subject", "body"]
    assert problem["detail"].startswith("kind: 'gpus' is not a kind of support")
    r = _open(api_client, h["member"], subject="a\nb")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "subject"
    r = api_client.post(BASE, json={"project": "vision"}, headers=h["member"])
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"kind", "subject", "body"}
    r = _open(api_client, h["member"], extra="no")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "extra"
    # Not a member: as for any project one cannot see, 404 naming the project.
    r = _open(api_client, h["stranger"])
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "project"
    r = _open(api_client, h["op"])  # sees the project, is no member
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "project"
    r = _open(api_client, h["member"], project="nope", kind="x")
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["project", "kind"]
    r = api_client.get(BASE, params={"state": "waiting"}, headers=h["op"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "state"
    rid = _open(api_client, h["member"]).json()["id"]
    r = api_client.post(f"{BASE}/{rid}/replies", json={"body": "   "}, headers=h["member"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
