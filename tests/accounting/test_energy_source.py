"""Measured vs estimated energy on usage records (issue 19 item 3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project
from rechenwerk.accounting.charging import (
    measured_energy,
    record_measured_energy,
    settle_usage,
)
from rechenwerk.errors import InvalidInput


def test_measured_joules_give_facility_kwh_and_co2_with_the_german_grid() -> None:
    # 2 kWh of IT energy x the default PUE 1.2 = 2.4 kWh at the facility
    kwh, co2 = measured_energy(7.2e6)
    assert kwh == pytest.approx(2.4)
    assert co2 == pytest.approx(2.4 * 381 / 1000)  # DE, 381 g CO2e/kWh


def test_measured_energy_takes_the_pue_of_the_runs_period(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from rechenwerk.config import get_settings

    monkeypatch.setenv("RECHENWERK_PUE_BY_PERIOD", "2026-01:1.35,2026-07:1.25")
    get_settings.cache_clear()
    try:
        assert measured_energy(3.6e6, at=datetime(2026, 3, 1, tzinfo=UTC))[0] == \
            pytest.approx(1.35)
        assert measured_energy(3.6e6, at=datetime(2026, 7, 1, tzinfo=UTC))[0] == \
            pytest.approx(1.25)
        assert measured_energy(3.6e6, at=datetime(2025, 7, 1, tzinfo=UTC))[0] == \
            pytest.approx(1.2)
    finally:
        get_settings.cache_clear()


def test_settle_marks_measured_and_estimated(session: Session) -> None:
    project = make_project(session)
    make_award(session, project)
    kw = {"project_id": project.id, "gpus": 4, "started_at": T0,
          "ended_at": T0 + timedelta(hours=1), "now": T0, "gpu_type": "A100-80GB"}
    estimated = settle_usage(session, external_id="x1", **kw)  # type: ignore[arg-type]
    assert estimated.energy_source == "estimated" and estimated.energy_kwh is not None
    kwh, co2 = measured_energy(5.4e6)
    measured = settle_usage(session, external_id="x2", energy_kwh=kwh, co2_kg=co2,
                            energy_measured=True, **kw)  # type: ignore[arg-type]
    assert measured.energy_source == "measured"
    assert measured.energy_kwh == pytest.approx(1.5 * 1.2)
    none = settle_usage(session, project_id=project.id, gpus=1, started_at=T0,
                        ended_at=T0 + timedelta(hours=1), now=T0, external_id="x3")
    assert none.energy_kwh is None and none.energy_source is None
    with pytest.raises(InvalidInput, match="needs its kWh"):
        settle_usage(session, external_id="x4", energy_measured=True,
                     **kw)  # type: ignore[arg-type]


def test_a_later_measurement_replaces_the_estimate_once(session: Session) -> None:
    project = make_project(session)
    make_award(session, project)
    rec = settle_usage(session, project_id=project.id, gpus=2, started_at=T0,
                       ended_at=T0 + timedelta(hours=1), now=T0, external_id="y1",
                       gpu_type="A100-80GB")
    assert record_measured_energy(rec, None) is False and rec.energy_source == "estimated"
    assert record_measured_energy(rec, 3.6e6) is True
    assert (rec.energy_source, rec.energy_kwh) == ("measured", pytest.approx(1.2))
    assert rec.co2_kg == pytest.approx(1.2 * 0.381)
    assert record_measured_energy(rec, 9.9e6) is False and rec.energy_kwh == pytest.approx(1.2)
