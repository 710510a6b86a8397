"""The reports through the REST API (JSON and CSV, authorisation) and `rechenwerk report`
(table, --json, --csv, one-line errors), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from report_data import Centre
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import bearer, make_token
from rechenwerk.cli.main import app as cli
from rechenwerk.clock import FakeClock

RANGE = {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}


def test_usage_api_json_and_csv(session: Session, centre: Centre, api_client: Any) -> None:
    op = make_token(session, centre.operator)
    session.commit()
    r = api_client.get("/api/v1/reports/usage", params={**RANGE, "by": "kind"},
                       headers=bearer(op))
    assert r.status_code == 200, r.text
    body = r.json()
    assert {row["key"]: row["gpu_hours"] for row in body["rows"]} == pytest.approx(
        {"university": 30.0, "sme": 5.0})
    # the kind once, not as key and again as label (`--csv` printed "sme,sme,...")
    assert [c["label"] for c in body["columns"]] == [
        "Organisation kind", "GPU-hours", "Runs", "Share of GPU-hours"]
    r = api_client.get("/api/v1/reports/usage", params={**RANGE, "by": "kind",
                                                        "format": "csv"}, headers=bearer(op))
    assert r.text.splitlines()[0] == "Organisation kind,GPU-hours,Runs,Share of GPU-hours"
    assert r.text.splitlines()[1].startswith("university,30")
    r = api_client.get("/api/v1/reports/usage", params={**RANGE, "format": "csv"},
                       headers=bearer(op))
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "Project,Title,GPU-hours,Runs,Share of GPU-hours"


def test_api_scopes_members_and_rejects_bad_input(session: Session, centre: Centre,
                                                  api_client: Any) -> None:
    pib = make_token(session, centre.pi_beta)
    session.commit()
    r = api_client.get("/api/v1/reports/usage", params=RANGE, headers=bearer(pib))
    assert [row["key"] for row in r.json()["rows"]] == ["beta"]
    r = api_client.get("/api/v1/reports/waits", params={**RANGE, "by": "colour"},
                       headers=bearer(pib))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "by"
    r = api_client.get("/api/v1/reports/usage", params={"from": "2026-03-01T00:00:00Z",
                                                        "to": "2026-01-01T00:00:00Z"},
                       headers=bearer(pib))
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    assert api_client.get("/api/v1/reports/usage").status_code == 401


def test_energy_and_utilisation_api(session: Session, centre: Centre, api_client: Any,
                                    clock: FakeClock) -> None:
    op = make_token(session, centre.operator)
    session.commit()
    clock.set(datetime(2026, 4, 1, tzinfo=UTC))  # capacity counts only up to now
    e = api_client.get("/api/v1/reports/energy", params={**RANGE, "country": "SE"},
                       headers=bearer(op)).json()
    assert any("41 g CO2e/kWh" in a for a in e["assumptions"])
    u = api_client.get("/api/v1/reports/utilisation",
                       params={**RANGE, "total_gpus": 8, "period": "week"},
                       headers=bearer(op)).json()
    assert u["totals"]["capacity_gpu_hours"] == pytest.approx(8 * 59 * 24)
    assert u["totals"]["busy_gpu_hours"] == pytest.approx(35.0)
    clock.set(datetime(2026, 1, 31, tzinfo=UTC))
    u = api_client.get("/api/v1/reports/utilisation", params={**RANGE, "total_gpus": 8},
                       headers=bearer(op)).json()
    assert u["totals"]["capacity_gpu_hours"] == pytest.approx(8 * 30 * 24)


@pytest.fixture
def cli_env(session: Session, centre: Centre, api_client: Any,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    from rechenwerk.cli import client

    token = make_token(session, centre.operator)
    session.commit()
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", token)
    yield CliRunner()
    client.use_transport(None)


def test_cli_report_table_json_csv(cli_env: CliRunner) -> None:
    args = ["--from", "2026-01-01", "--to", "2026-03-01"]
    r = cli_env.invoke(cli, ["report", "usage", "--by", "org", *args])
    assert r.exit_code == 0, r.output
    assert "Uni Heidelberg" in r.output and "GPU-hours" in r.output
    r = cli_env.invoke(cli, ["report", "waits", "--by", "qos", "--json", *args])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert {row["qos"] for row in data["rows"]} == {"normal", "high"}
    r = cli_env.invoke(cli, ["report", "energy", "--csv", *args])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == ("Project,GPU-hours,Energy (MWh),t CO2e,"
                                        "Measured (MWh),Estimated (MWh),"
                                        "Basis (measured/estimated/mixed),kWh per GPU-hour")


def test_cli_report_errors_are_one_line(cli_env: CliRunner) -> None:
    r = cli_env.invoke(cli, ["report", "spending"])
    assert r.exit_code == 2 and "unknown report 'spending'" in r.output
    r = cli_env.invoke(cli, ["report", "usage", "--by", "qos"])
    assert r.exit_code == 2 and "project, org, kind" in r.output
    r = cli_env.invoke(cli, ["report", "usage", "--from", "yesterday"])
    assert r.exit_code == 2 and "Traceback" not in r.output
