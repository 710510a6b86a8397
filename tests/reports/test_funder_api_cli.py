"""The funder report through the REST API (operators only; JSON, CSV, one section) and
`rechenwerk report funder` (table, --json, --csv, one-line errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from funder_data import EXPECTED_HOURS, hours_of, operator_and_pi_tokens
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import bearer
from rechenwerk.cli.main import app as cli

Q1 = {"from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}


def test_api_operators_only(session: Session, api_client: Any) -> None:
    op, pi = operator_and_pi_tokens(session)
    r = api_client.get("/api/v1/reports/funder", params=Q1, headers=bearer(op))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["energy_basis"] == "estimated"
    assert hours_of(body["sections"]["kind"]) == {
        k: pytest.approx(v) for k, v in EXPECTED_HOURS["kind"].items()}
    assert body["sections"]["kind"]["totals"]["sme_startup_used_share"] == pytest.approx(
        70 / 220, abs=1e-6)
    r = api_client.get("/api/v1/reports/funder", params=Q1, headers=bearer(pi))
    assert r.status_code == 403 and "operators" in r.json()["detail"]
    assert api_client.get("/api/v1/reports/funder", params=Q1).status_code == 401


def test_api_csv_and_bad_input(session: Session, api_client: Any) -> None:
    op, _ = operator_and_pi_tokens(session)
    r = api_client.get("/api/v1/reports/funder", params={**Q1, "format": "csv",
                                                         "section": "country"},
                       headers=bearer(op))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == [
        "Country (ISO),Awarded GPU-hours,Share of awarded,Used GPU-hours,Share of used",
        "DE,1000.000,0.667,150.000,0.682", "NL,300.000,0.200,30.000,0.136",
        "FR,200.000,0.133,40.000,0.182"]
    r = api_client.get("/api/v1/reports/funder", params={**Q1, "format": "csv"},
                       headers=bearer(op))
    assert r.text.startswith("# GPU-hours by organisation country\n")
    assert ("# Energy per month (measured and estimated)\nMonth (UTC),GPU-hours,Energy (kWh),"
            "Measured (kWh),Estimated (kWh)") \
        in r.text
    r = api_client.get("/api/v1/reports/funder", params={**Q1, "section": "decisions"},
                       headers=bearer(op))
    one = r.json()
    assert one["grouping"] == "decisions" and one["totals"]["decided"] == 4
    assert [row["mode"] for row in one["rows"]] == ["innovation", "research"]
    r = api_client.get("/api/v1/reports/funder", params={**Q1, "section": "planets"},
                       headers=bearer(op))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "section"
    r = api_client.get("/api/v1/reports/funder", params={"from": "2026-04-01T00:00:00Z",
                                                         "to": "2026-01-01T00:00:00Z"},
                       headers=bearer(op))
    assert r.status_code == 422 and "empty" in r.json()["detail"]


@pytest.fixture
def cli_env(session: Session, api_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from rechenwerk.cli import client

    op, _ = operator_and_pi_tokens(session)
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", op)
    yield CliRunner()
    client.use_transport(None)


def test_cli_json_csv_table(cli_env: CliRunner) -> None:
    args = ["report", "funder", "--from", "2026-01-01", "--to", "2026-04-01"]
    r = cli_env.invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert set(data) == {"report", "title", "from", "to", "energy_basis", "notes",
                         "sections"}
    assert list(data["sections"]) == ["country", "field", "field-detail", "kind", "mode",
                                      "people", "decisions", "deadlines", "capacity", "waits",
                                      "fair-access", "fair-access-kind", "energy"]
    assert data["sections"]["people"]["totals"] == {"projects": 4, "members": 5,
                                                    "users_with_runs": 3}
    r = cli_env.invoke(cli, [*args, "--csv", "--section", "people"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "Organisation kind,Active projects,Members of active projects,Users with runs",
        "sme,1,2,1", "startup,1,2,2", "university,2,1,0"]
    r = cli_env.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "energy is estimated" in r.output and "Decision times per access mode" in r.output
    assert "66.7 %" in r.output  # DE's share of the awarded GPU-hours
    assert "sme_startup_awarded_share 33.3 %" in r.output
    assert "Basis (measured/estimated/mixed)" in r.output
    # the other reports still work as before
    r = cli_env.invoke(cli, ["report", "usage", "--by", "kind", "--from", "2026-01-01",
                             "--to", "2026-04-01", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["report"] == "usage"


def test_cli_errors_are_one_line(cli_env: CliRunner) -> None:
    r = cli_env.invoke(cli, ["report", "funder", "--from", "2026-13-01"])
    assert r.exit_code == 2, r.output
    assert "--from must be a day like 2026-01-01" in r.output
    assert len(r.output.strip().splitlines()) <= 2 and "Traceback" not in r.output
    r = cli_env.invoke(cli, ["report", "funder", "--section", "planets"])
    assert r.exit_code == 2 and "country, field" in r.output
    r = cli_env.invoke(cli, ["report", "usage", "--section", "kind"])
    assert r.exit_code == 2 and "no --section" in r.output


def test_cli_refuses_a_non_operator(session: Session, api_client: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from rechenwerk.cli import client

    _, pi = operator_and_pi_tokens(session)
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", pi)
    try:
        r = CliRunner().invoke(cli, ["report", "funder", "--json"])
    finally:
        client.use_transport(None)
    assert r.exit_code == 4 and "only operators" in r.output and "Traceback" not in r.output
