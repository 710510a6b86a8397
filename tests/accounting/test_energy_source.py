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


def test_measured_joules_give_kwh_and_co2_with_the_german_grid() -> None:
    kwh, co2 = measured_energy(7.2e6)  # 2 kWh
    assert kwh == pytest.approx(2.0)
    assert co2 == pytest.approx(2.0 * 381 / 1000)  # DE, 381 g CO2e/kWh


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
    assert measured.energy_kwh == pytest.approx(1.5)
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
    assert (rec.energy_source, rec.energy_kwh) == ("measured", pytest.approx(1.0))
    assert rec.co2_kg == pytest.approx(0.381)
    assert record_measured_energy(rec, 9.9e6) is False and rec.energy_kwh == pytest.approx(1.0)
