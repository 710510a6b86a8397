"""PUE per period (RECHENWERK_PUE_BY_PERIOD) in the energy estimate of a run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import make_award, make_project
from rechenwerk.accounting.charging import estimate_energy, settle_usage
from rechenwerk.cli.main import app
from rechenwerk.config import Settings, get_settings
from rechenwerk.errors import InvalidInput
from rechenwerk.planning.energy import DEFAULT_PUE, parse_pue_by_period, pue_at
from rechenwerk.planning.hardware import get_gpu

SCHEDULE = "2026-07:1.25, 2026-01:1.35"


@pytest.fixture
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_schedule_from_that_month_on() -> None:
    schedule = parse_pue_by_period(SCHEDULE)
    assert schedule == (("2026-01", 1.35), ("2026-07", 1.25))
    assert pue_at(schedule, datetime(2025, 12, 31, 23, tzinfo=UTC)) == DEFAULT_PUE
    assert pue_at(schedule, datetime(2026, 1, 1, tzinfo=UTC)) == 1.35
    assert pue_at(schedule, datetime(2026, 6, 30, 23, 59, tzinfo=UTC)) == 1.35
    assert pue_at(schedule, datetime(2026, 7, 1, tzinfo=UTC)) == 1.25
    assert pue_at((), datetime(2026, 7, 1, tzinfo=UTC)) == DEFAULT_PUE
    assert pue_at(schedule, None) == DEFAULT_PUE
    assert Settings(pue_by_period=SCHEDULE).pue_at(datetime(2026, 3, 1, tzinfo=UTC)) == 1.35


@pytest.mark.parametrize(("value", "text"), [
    ("2026-13:1.3", "is not YYYY-MM:PUE"), ("2026-01", "is not YYYY-MM:PUE"),
    ("2026-01:high", "is not a number"), ("2026-01:0.9", "out of range"),
    ("2026-01:1.3,2026-01:1.2", "given twice")])
def test_bad_schedule_is_refused_naming_the_field(value: str, text: str) -> None:
    with pytest.raises(InvalidInput, match=text) as exc:
        parse_pue_by_period(value)
    assert exc.value.field == "pue_by_period"


@pytest.mark.usefixtures("_fresh_settings")
def test_bad_schedule_stops_start_up_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHENWERK_PUE_BY_PERIOD", "2026-01:0.5")
    with pytest.raises(InvalidInput, match=r"RECHENWERK_PUE_BY_PERIOD: .*out of range"):
        get_settings()
    r = CliRunner().invoke(app, ["server", "--port", "1"])
    assert r.exit_code == 2 and "RECHENWERK_PUE_BY_PERIOD" in r.output
    assert "Traceback" not in r.output


@pytest.mark.usefixtures("_fresh_settings")
def test_runs_are_estimated_with_their_periods_pue(monkeypatch: pytest.MonkeyPatch,
                                                   session: Session) -> None:
    monkeypatch.setenv("RECHENWERK_PUE_BY_PERIOD", SCHEDULE)
    a100 = get_gpu("A100-80GB")
    it_kw = (a100.tdp_w * 0.85 + a100.node_overhead_w) / 1000.0
    project = make_project(session)
    make_award(session, project)
    for day, pue in ((datetime(2025, 12, 1, tzinfo=UTC), DEFAULT_PUE),
                     (datetime(2026, 2, 1, tzinfo=UTC), 1.35),
                     (datetime(2026, 8, 1, tzinfo=UTC), 1.25)):
        rec = settle_usage(session, project_id=project.id, gpus=4, started_at=day,
                           ended_at=day + timedelta(hours=2), now=day,
                           external_id=f"pue-{day:%Y%m}", gpu_type="A100-80GB")
        assert rec.energy_kwh == pytest.approx(8 * it_kw * pue)
        assert rec.energy_source == "estimated"
    at = datetime(2026, 7, 1, tzinfo=UTC)
    assert estimate_energy("A100-80GB", 1.0, at=at) == (
        pytest.approx(it_kw * 1.25), pytest.approx(it_kw * 1.25 * 0.381))


@pytest.mark.usefixtures("_fresh_settings")
def test_energy_report_estimates_each_run_with_its_months_pue(
        monkeypatch: pytest.MonkeyPatch, session: Session) -> None:
    from rechenwerk.reports.service import energy_report
    from rechenwerk.reports.tables import Scope

    monkeypatch.setenv("RECHENWERK_PUE_BY_PERIOD", SCHEDULE)
    a100 = get_gpu("A100-80GB")
    it_kw = (a100.tdp_w * 0.85 + a100.node_overhead_w) / 1000.0
    project = make_project(session)
    for day in (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)):
        settle_usage(session, project_id=project.id, gpus=1, started_at=day,
                     ended_at=day + timedelta(hours=10), now=day,
                     external_id=f"r-{day:%m}", gpu_type="A100-80GB")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    t = energy_report(session, scope=Scope(None), start=start, end=end)
    expected_mwh = 10 * it_kw * (1.35 + 1.25) / 1000.0
    assert t.rows[0]["estimated_mwh"] == pytest.approx(expected_mwh)
    assert any("1.25, 1.35" in a for a in t.assumptions)
    fixed = energy_report(session, scope=Scope(None), start=start, end=end, pue=1.1)
    assert fixed.rows[0]["estimated_mwh"] == pytest.approx(20 * it_kw * 1.1 / 1000.0)
    assert any(a.startswith("PUE 1.1 ") for a in fixed.assumptions)
