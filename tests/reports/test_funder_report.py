"""The funder report's figures against the hand-built centre of ``funder_data.py`` (every
number worked out by hand there), on SQLite and PostgreSQL; and its small pure helpers."""

from __future__ import annotations

import pytest
from funder_data import EXPECTED_HOURS, Q1, build, hours_of
from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput
from rechenwerk.reports import funder


@pytest.fixture
def report(session: Session) -> funder.FunderReport:
    build(session)
    return funder.funder_report(session, start=Q1[0], end=Q1[1])


@pytest.mark.parametrize("name", sorted(EXPECTED_HOURS))
def test_awarded_and_used_hours(report: funder.FunderReport, name: str) -> None:
    got = hours_of(report.section(name).to_dict())
    assert got == {k: pytest.approx(v) for k, v in EXPECTED_HOURS[name].items()}
    totals = report.section(name).totals
    assert totals["awarded_gpu_hours"] == pytest.approx(1500.0)
    assert totals["used_gpu_hours"] == pytest.approx(220.0)


def test_shares_and_sme_startup_share(report: funder.FunderReport) -> None:
    kind = report.section("kind")
    rows = {r["key"]: r for r in kind.rows}
    assert rows["university"]["awarded_share"] == pytest.approx(1000 / 1500)
    assert rows["sme"]["used_share"] == pytest.approx(40 / 220)
    assert kind.totals["sme_startup_awarded_share"] == pytest.approx(500 / 1500)
    assert kind.totals["sme_startup_used_share"] == pytest.approx(70 / 220)
    # largest award first; labels of fields from the FORD list
    assert [r["key"] for r in kind.rows] == ["university", "startup", "sme"]
    labels = {r["key"]: r["label"] for r in report.section("field").rows}
    assert labels == {"1": "Natural sciences", "2": "Engineering and technology",
                      "(not given)": "(not given)"}


def test_people_per_kind(report: funder.FunderReport) -> None:
    t = report.section("people")
    # active: alpha, delta (university), beta (sme), gamma (startup); epsilon has nothing
    # in Q1. Members by their own organisation: pia (uni, PI of two), pib and late (sme),
    # pig and sam (startup). Runs: sam, pib, pig (pia's run is an imported one).
    assert t.rows == [{"kind": "sme", "projects": 1, "members": 2, "users_with_runs": 1},
                      {"kind": "startup", "projects": 1, "members": 2,
                       "users_with_runs": 2},
                      {"kind": "university", "projects": 2, "members": 1,
                       "users_with_runs": 0}]
    assert t.totals == {"projects": 4, "members": 5, "users_with_runs": 3}


def test_decision_times(report: funder.FunderReport) -> None:
    t = report.section("decisions")
    rows = {r["mode"]: r for r in t.rows}
    assert set(rows) == {"research", "innovation"}
    assert (rows["research"]["decided"], rows["research"]["accepted"]) == (3, 2)
    assert rows["research"]["median_days"] == pytest.approx(20.0)
    assert rows["research"]["p90_days"] == pytest.approx(20 + 0.8 * 41)  # of 10, 20, 61
    assert rows["innovation"] == {"mode": "innovation", "decided": 1, "accepted": 1,
                                  "median_days": pytest.approx(5.0),
                                  "p90_days": pytest.approx(5.0)}
    assert t.totals["decided"] == 4
    assert t.totals["median_days"] == pytest.approx(15.0)
    assert t.totals["p90_days"] == pytest.approx(20 + 0.7 * 41)


def test_waits_by_kind(report: funder.FunderReport) -> None:
    t = report.section("waits")
    rows = {r["kind"]: r for r in t.rows}
    assert rows["university"]["jobs"] == 3
    assert rows["university"]["median_wait_h"] == pytest.approx(2.0)
    assert rows["university"]["p90_wait_h"] == pytest.approx(2.8)
    assert rows["sme"]["median_wait_h"] == pytest.approx(4.0)
    assert rows["startup"]["p90_wait_h"] == pytest.approx(10.0)
    assert "size" not in t.rows[0] and all(c.key != "size" for c in t.columns)


def test_energy_per_month_is_labelled_estimated(report: funder.FunderReport) -> None:
    t = report.section("energy")
    assert [(r["month"], r["gpu_hours"], r["energy_kwh"], r["co2_kg"],
             r["gpu_hours_without_energy"], r["basis"]) for r in t.rows] == [
        ("2026-01", pytest.approx(110.0), pytest.approx(60.0), pytest.approx(23.0),
         pytest.approx(10.0), "estimated"),
        ("2026-02", pytest.approx(20.0), pytest.approx(12.0), pytest.approx(5.0),
         pytest.approx(0.0), "estimated"),
        ("2026-03", pytest.approx(90.0), pytest.approx(60.0), pytest.approx(23.0),
         pytest.approx(0.0), "estimated"),
    ]
    assert t.totals["energy_kwh"] == pytest.approx(132.0)
    assert "estimated" in t.title and "Estimated" in t.to_csv().splitlines()[0]
    assert any("estimated otherwise" in a for a in t.assumptions)
    assert t.totals["basis"] == "estimated" and t.totals["measured_kwh"] == 0.0


def test_energy_per_month_parts_measured_and_estimated(session: Session) -> None:
    build(session)
    beta = session.scalars(select(UsageRecord).where(UsageRecord.gpu_hours == 40.0,
                                                     UsageRecord.energy_kwh == 20.0)).one()
    beta.energy_source = "measured"  # as if Slurm had recorded its ConsumedEnergy
    report = funder.funder_report(session, start=Q1[0], end=Q1[1])
    t = report.section("energy")
    rows = {r["month"]: r for r in t.rows}
    assert (rows["2026-03"]["measured_kwh"], rows["2026-03"]["estimated_kwh"],
            rows["2026-03"]["basis"]) == (20.0, 40.0, "mixed")
    assert rows["2026-01"]["basis"] == "estimated"
    assert (t.totals["measured_kwh"], t.totals["estimated_kwh"]) == (20.0, 112.0)
    assert t.totals["basis"] == "mixed" and report.to_dict()["energy_basis"] == "mixed"


def test_json_and_csv_shape(report: funder.FunderReport) -> None:
    data = report.to_dict()
    assert data["report"] == "funder" and data["energy_basis"] == "estimated"
    assert list(data["sections"]) == list(funder.SECTIONS)
    assert data["sections"]["country"]["columns"][0] == {"key": "key",
                                                         "label": "Country (ISO)"}
    csv_all = report.to_csv()
    assert csv_all.count("\n# ") == len(funder.SECTIONS) - 1
    assert csv_all.startswith("# GPU-hours by organisation country\nCountry (ISO),")
    assert report.to_csv("people").splitlines() == [
        "Organisation kind,Active projects,Members of active projects,Users with runs",
        "sme,1,2,1", "startup,1,2,2", "university,2,1,0"]
    with pytest.raises(InvalidInput) as exc:
        report.section("planets")
    assert exc.value.field == "section"


def test_helpers() -> None:
    assert funder.percentile([], 50) is None
    assert funder.percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert funder.rollup_majors({"1.2": 2.0, "1.5": 3.0, "2": 1.0, "(not given)": 4.0}) == {
        "1": 5.0, "2": 1.0, "(not given)": 4.0}
    assert funder.sme_share({"sme": 1.0, "startup": 1.0, "university": 2.0}) == 0.5
    assert funder.sme_share({}) == 0.0
    rows = funder.merge({"a": 3.0}, {"b": 1.0})
    assert rows[0] == {"key": "a", "label": "a", "awarded_gpu_hours": 3.0,
                       "awarded_share": 1.0, "used_gpu_hours": 0.0, "used_share": 0.0}


def test_an_empty_centre_gives_empty_sections(session: Session) -> None:
    r = funder.funder_report(session, start=Q1[0], end=Q1[1])
    assert all(t.rows == [] for t in r.sections if t.grouping != "capacity")
    # capacity is there without any award or run (unknown here: no inventory given)
    assert [(c["period"], c["awarded_gpu_hours"], c["used_gpu_hours"])
            for c in r.section("capacity").rows] == [("2026-Q1", 0.0, 0.0)]
    assert r.section("kind").totals["sme_startup_used_share"] == 0.0
    assert r.section("decisions").totals["median_days"] is None


def test_awards_split_pro_rata_across_ranges(session: Session) -> None:
    build(session)
    april = (Q1[1], Q1[1] + (Q1[1] - Q1[1].replace(month=3)))  # Apr 1 - May 1 (31 days)
    kind_april = funder.by_kind(session, *april).rows
    # beta's 400 over Mar 17 - Apr 16: 15 of 30 days in Q1 (200), the other 15 in April;
    # alpha's run ending at Apr 1 00:00 counts in April (used, no award in April)
    assert {r["key"]: (r["awarded_gpu_hours"], r["used_gpu_hours"]) for r in kind_april} == {
        "sme": pytest.approx((200.0, 0.0)), "university": pytest.approx((0.0, 5.0))}
    whole = funder.by_kind(session, Q1[0], april[1]).totals["awarded_gpu_hours"]
    assert whole == pytest.approx(1500.0 + 200.0)
