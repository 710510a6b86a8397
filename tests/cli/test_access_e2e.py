"""The issue's demo flow end to end through the CLI, against a real uvicorn server on a
free port (SQLite and PostgreSQL): an SME applies to an innovation call, a reviewer from
another organisation reviews, an operator awards 5,000 GPU-hours in two quarterly
periods, the PI adds a member. Also the CLI's error lines and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from live_server import free_port
from rechenwerk.cli.main import app as cli
from rechenwerk.config import get_settings


class Cli:
    def __init__(self, url: str, db_url: str, home: Path) -> None:
        self.url, self.db_url, self.home = url, db_url, home
        self.runner = CliRunner()

    def run(self, *args: str, token: str | None = None, code: int = 0) -> Any:
        env = {"RECHENWERK_DATABASE_URL": self.db_url, "XDG_CONFIG_HOME": str(self.home),
               "RECHENWERK_API_URL": self.url, "RECHENWERK_TOKEN": token or ""}
        get_settings.cache_clear()
        result = self.runner.invoke(cli, list(args), env=env)
        get_settings.cache_clear()
        assert result.exit_code == code, (args, result.exit_code, result.output)
        if code == 0 and "--json" in args:
            return json.loads(result.stdout)
        return result


@pytest.fixture
def rw(live_server: str, db_url: str, tmp_path: Path) -> Cli:
    return Cli(live_server, db_url, tmp_path / "home")


def _token(rw: Cli, username: str) -> str:
    return str(rw.run("admin", "token", "create", username, "--json")["token"])


def test_demo_flow_through_the_cli(rw: Cli) -> None:
    # Bootstrap: the first operator and token straight into the database.
    rw.run("admin", "user", "create", "operator", "--email", "op@centre.eu", "--operator")
    op = _token(rw, "operator")
    rw.run("org", "create", "--name", "Nordlicht AI GmbH", "--kind", "sme", "--country", "DE",
           token=op)
    rw.run("org", "create", "--name", "Universidad de Valdemar", "--kind", "university",
           "--country", "ES", token=op)
    for user, org, extra in (("greta", "Nordlicht AI GmbH", ()),
                             ("jonas", "Nordlicht AI GmbH", ()),
                             ("sven", "Nordlicht AI GmbH", ("--reviewer",)),
                             ("lucia", "Universidad de Valdemar", ("--reviewer",))):
        rw.run("admin", "user", "create", user, "--email", f"{user}@x.eu", "--org", org, *extra)
    greta, jonas, sven, lucia = (_token(rw, u) for u in ("greta", "jonas", "sven", "lucia"))
    reviewers = rw.run("user", "list", "--reviewers", "--json", token=op)
    assert sorted(u["username"] for u in reviewers["items"]) == ["lucia", "sven"]
    rw.run("user", "update", "jonas", "--name", "Jonas Weber", token=op)
    rw.run("user", "update", "jonas", "--operator", token=greta, code=4)
    closes = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    call = rw.run("call", "create", "innovation-2026", "--title", "AI Innovation Access",
                  "--mode", "innovation", "--closes", closes, "--json", token=op)
    assert call["status"] == "open" and call["eligible_kinds"] == ["sme", "startup"]

    # The SME's PI logs in (credentials saved), creates a project and applies.
    rw.run("login", "--url", rw.url, "--token", greta)
    saved = json.loads((rw.home / "rechenwerk" / "credentials.json").read_text())
    assert saved == {"url": rw.url, "token": greta}
    assert rw.run("whoami", "--json", token=greta)["organization_kind"] == "sme"
    rw.run("project", "create", "nordlicht-llm", "--title", "German maintenance LLM",
           token=greta)
    proposal = rw.run("proposal", "create", "--call", "innovation-2026", "--project",
                      "nordlicht-llm", "--title", "Continued pre-training of a 7B model",
                      "--gpu-type", "H100", "--gpu-hours", "5000", "--json", token=greta)
    pid = str(proposal["id"])
    assert proposal["state"] == "draft"
    assert rw.run("proposal", "submit", pid, "--json", token=greta)["state"] == "submitted"

    # Review: the same-organisation reviewer is refused (conflict of interest).
    bad = rw.run("proposal", "assign-reviewer", pid, "sven", token=op, code=5)
    assert "conflict of interest" in bad.stderr and "reviewer" in bad.stderr
    invited = rw.run("proposal", "assign-reviewer", pid, "lucia", token=op)
    assert "invited" in invited.stdout and "answer by" in invited.stdout
    early_review = rw.run("proposal", "review", pid, "--technical", "4", "--scientific", "5",
                          token=lucia, code=5)
    assert "accept the invitation" in early_review.stderr
    rw.run("proposal", "accept-review", pid, token=lucia)
    assert rw.run("proposal", "list", "--json", token=sven)["total"] == 0
    assert rw.run("proposal", "list", "--json", token=lucia)["total"] == 1
    out_of_range = rw.run("proposal", "review", pid, "--technical", "7", "--scientific", "4",
                          token=lucia, code=2)
    assert "technical_score" in out_of_range.stderr
    rw.run("proposal", "review", pid, "--technical", "4", "--scientific", "5", "--comment",
           "Solid plan.", token=lucia)
    early = rw.run("proposal", "decide", pid, "accepted", token=op, code=5)
    assert "eligibility step" in early.stderr
    bad_step = rw.run("proposal", "assess", pid, "scientific", "pass", token=op, code=2)
    assert "step" in bad_step.stderr
    no_note = rw.run("proposal", "assess", pid, "eligibility", "fail", token=op, code=2)
    assert "note" in no_note.stderr
    rw.run("proposal", "assess", pid, "eligibility", "pass", token=op)
    steps = rw.run("proposal", "assess", pid, "technical", "pass", "--note", "fits the GPUs",
                   "--json", token=op)
    assert steps["step"] == "right_to_reply"
    shown = rw.run("proposal", "pipeline", pid, token=greta)
    assert "technical" in shown.stdout and "fits the GPUs" in shown.stdout
    assert "may reply to the reviews until" in shown.stdout
    rw.run("proposal", "reply", pid, "--text", "Thanks, we add the ablation.", token=greta)
    again = rw.run("proposal", "reply", pid, "--text", "more", token=greta, code=5)
    assert "one reply" in again.stderr
    call_slug = rw.run("proposal", "show", pid, "--json", token=op)["call"]
    ranking = rw.run("call", "ranking", call_slug, "--json", token=op)
    assert [r["proposal_id"] for r in ranking["rows"]] == [int(pid)]
    assert "recommended" in rw.run("call", "ranking", call_slug, "--confirm", token=op).stdout
    decided = rw.run("proposal", "decide", pid, "accepted", "--json", token=op)
    assert decided["state"] == "accepted"
    letter = rw.run("proposal", "letter", pid, token=greta).stdout
    assert "Solid plan." in letter and "lucia" not in letter and "in full" in letter

    # The operator awards 5,000 GPU-hours in two quarterly periods.
    award = rw.run("award", "create", "--project", "nordlicht-llm", "--proposal", pid,
                   "--gpu-hours", "5000", "--start", "2026-01-01", "--periods", "2",
                   "--period-months", "3", "--carry-over", "500", "--json", token=op)
    assert award["gpu_type"] == "H100-SXM" and award["gpu_hours"] == 5000.0
    assert [(p["starts_at"][:10], p["ends_at"][:10], p["gpu_hours"])
            for p in award["periods"]] == [("2026-01-01", "2026-04-01", 2500.0),
                                           ("2026-04-01", "2026-07-01", 2500.0)]
    # Only operators award (exit code 4 = permission denied).
    rw.run("award", "create", "--project", "nordlicht-llm", "--gpu-type", "H100",
           "--gpu-hours", "10", "--start", "2026-01-01", token=greta, code=4)

    # The PI adds a member, who now sees the project and its award.
    rw.run("project", "add-member", "nordlicht-llm", "jonas", token=greta)
    shown = rw.run("project", "show", "nordlicht-llm", "--json", token=jonas)
    assert {(m["username"], m["role"]) for m in shown["members"]} == {
        ("greta", "pi"), ("jonas", "member")}
    assert rw.run("award", "list", "--json", token=jonas)["total"] == 1
    table = rw.run("award", "show", str(award["id"]), token=jonas)
    assert "2,500.0" in table.stdout and "H100-SXM" in table.stdout

    # Outsiders see nothing (404 -> exit 3); no token -> exit 4.
    rw.run("project", "show", "nordlicht-llm", token=lucia, code=3)
    (rw.home / "rechenwerk" / "credentials.json").unlink()
    assert "rechenwerk login" in rw.run("project", "list", code=4).stderr

    audit = rw.run("admin", "audit", "--entity", "proposal", "--id", pid, "--json", token=op)
    assert [e["action"] for e in reversed(audit["items"])] == [
        "proposal.create", "proposal.submitted", "proposal.under_review",
        "proposal.review_accepted", "proposal.review", "proposal.assessment",
        "proposal.assessment", "proposal.reply", "proposal.accepted"]


def test_cli_bad_input_names_the_field(rw: Cli) -> None:
    rw.run("admin", "user", "create", "operator", "--email", "op@centre.eu", "--operator")
    op = _token(rw, "operator")
    r = rw.run("org", "create", "--name", "X", "--kind", "bakery", "--country", "DE",
               token=op, code=2)
    assert "kind" in r.stderr and "Traceback" not in r.output
    r = rw.run("account", "create", "--project", "nope", "--credit-limit", "10", "--price",
               "H100=abc", token=op, code=2)
    assert "price" in r.stderr


def test_cli_without_server_says_so(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["whoami"], env={
        "RECHENWERK_API_URL": f"http://127.0.0.1:{free_port()}", "RECHENWERK_TOKEN": "x",
        "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.exit_code == 8
    assert "cannot reach the Rechenwerk server" in result.stderr


def test_demo_loads_once(rw: Cli, tmp_path: Path) -> None:
    out = rw.run("admin", "demo", "--if-empty", "--tokens-file", str(tmp_path / "t.json"),
                 "--json")
    tokens = json.loads((tmp_path / "t.json").read_text())
    assert tokens == out["tokens"] and {"operator", "lucia", "greta", "jonas"} <= set(tokens)
    assert out["past_jobs"] > 50  # weeks of history, so a fresh centre shows figures
    again = rw.run("admin", "demo", "--if-empty")
    assert "not loaded" in again.stdout
    rw.run("admin", "demo", code=5)
    awards = rw.run("award", "list", "--json", token=tokens["greta"])
    assert awards["total"] == 1 and len(awards["items"][0]["periods"]) == 2
    assert awards["items"][0]["gpu_hours"] == 5000.0
    calls = rw.run("call", "list", "--status", "open", "--json", token=tokens["greta"])
    assert {c["access_mode"] for c in calls["items"]} >= {"innovation", "research"}
    assert rw.run("proposal", "list", "--json", token=tokens["henrik"])["total"] == 1
