"""``rechenwerk support ...`` against a real server (SQLite and PostgreSQL): a member
opens a request (body from a file), an operator lists, assigns, answers and closes it,
and bad input ends with one line and an exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from factories import make_project, make_token, make_user
from live_server import run_cli as _run


def test_support_commands(live_server: str, session: Session, tmp_path: Path) -> None:
    op = make_user(session, username="oscar", operator=True)
    pi, member, other = (make_user(session, username=n) for n in ("pia", "mo", "ola"))
    make_project(session, pi=pi, slug="fluid", members={member: "member"})
    t_op, t_pi, t_member, t_other = (make_token(session, u) for u in (op, pi, member, other))
    session.commit()
    home = tmp_path / "home"
    body = tmp_path / "body.txt"
    body.write_text("Our solver needs 4 nodes.\nHow do we start?\n", encoding="utf-8")

    made = _run(
        live_server,
        home,
        t_member,
        "support",
        "open",
        "-p",
        "fluid",
        "-k",
        "porting",
        "-s",
        "Multi-node runs",
        "--file",
        str(body),
        "--json",
    )
    rid = str(made["id"])
    assert made["state"] == "open" and made["messages"][0]["body"].startswith("Our solver")
    listed = _run(live_server, home, t_op, "support", "list", "--state", "open")
    assert "Multi-node runs" in listed.output and "mo" in listed.output
    out = _run(live_server, home, t_op, "support", "assign", rid)
    assert f"support request {rid} assigned to oscar; state assigned" in out.output
    _run(
        live_server,
        home,
        t_op,
        "support",
        "reply",
        rid,
        "--file",
        "-",
        stdin="Use nodes: 4 in your job spec.",
    )
    shown = _run(live_server, home, t_pi, "support", "show", rid)
    assert "oscar (operator)" in shown.output and "Use nodes: 4" in shown.output
    assert "answered" in shown.output
    out = _run(live_server, home, t_member, "support", "close", rid, "-c", "Works, thanks.")
    assert f"support request {rid} closed; state closed" in out.output
    assert (
        _run(live_server, home, t_member, "support", "list", "--state", "closed", "--json")["total"]
        == 1
    )
    out = _run(live_server, home, t_member, "support", "reopen", rid)
    assert "state assigned" in out.output

    report = _run(live_server, home, t_op, "report", "support", "--by", "state", "--json")
    assert report["report"] == "support"
    assert [(r["state"], r["requests"]) for r in report["rows"]] == [("assigned", 1)]
    assert report["totals"]["answered"] == 1
    table = _run(live_server, home, t_op, "report", "support")
    assert "Support requests by kind" in table.output and "porting" in table.output
    bad_by = _run(live_server, home, t_op, "report", "support", "--by", "qos", code=2)
    assert "--by 'qos' is not valid for the support report" in bad_by.output

    # Errors: a line naming the problem, the exit code of its kind.
    hidden = _run(live_server, home, t_other, "support", "show", rid, code=3)
    assert f"support request {rid} not found" in hidden.output
    bad = _run(
        live_server,
        home,
        t_member,
        "support",
        "open",
        "-p",
        "fluid",
        "-k",
        "gpus",
        "-s",
        "",
        "-b",
        "x",
        code=2,
    )
    assert "kind" in bad.output and "subject: must not be empty" in bad.output
    assert (
        _run(
            live_server,
            home,
            t_member,
            "support",
            "open",
            "-p",
            "fluid",
            "-k",
            "data",
            "-s",
            "s",
            code=2,
        ).output.count("--body (or --file) is required")
        == 1
    )
    missing = _run(
        live_server,
        home,
        t_member,
        "support",
        "reply",
        rid,
        "--file",
        str(tmp_path / "nope.txt"),
        code=2,
    )
    assert "cannot read" in missing.output
    denied = _run(live_server, home, t_pi, "support", "assign", rid, code=4)
    assert "only operators" in denied.output
    _run(live_server, home, t_op, "support", "close", rid)
    again = _run(live_server, home, t_op, "support", "close", rid, code=5)
    assert "already closed" in again.output
    no_member = _run(
        live_server,
        home,
        t_other,
        "support",
        "open",
        "-p",
        "fluid",
        "-k",
        "data",
        "-s",
        "s",
        "-b",
        "b",
        code=3,
    )
    assert "project 'fluid' not found" in no_member.output
