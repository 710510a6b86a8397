"""Awarded and used GPU-hours against capacity per quarter, on the hand-built centre of
``funder_data.py`` over Dec 2025 - Apr 2026 (three quarters, the outer two clipped)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from funder_data import build, d
from sqlalchemy.orm import Session

from rechenwerk.reports import funder

RANGE = (d(12, 1, 2025), d(5, 1))


def test_quarters_are_clipped_to_the_range() -> None:
    assert funder.quarters(*RANGE) == [
        ("2025-Q4", d(12, 1, 2025), d(1, 1)), ("2026-Q1", d(1, 1), d(4, 1)),
        ("2026-Q2", d(4, 1), d(5, 1))]
    assert funder.quarters(d(1, 1), d(1, 1, 2027)) == [
        ("2026-Q1", d(1, 1), d(4, 1)), ("2026-Q2", d(4, 1), d(7, 1)),
        ("2026-Q3", d(7, 1), d(10, 1)), ("2026-Q4", d(10, 1), d(1, 1, 2027))]
    noon = datetime(2026, 2, 3, 12, tzinfo=UTC)
    assert funder.quarters(noon, d(2, 4)) == [("2026-Q1", noon, d(2, 4))]


def test_awarded_and_used_against_capacity(session: Session) -> None:
    build(session)
    t = funder.capacity_per_quarter(session, *RANGE, total_gpus=8)
    # capacity: 8 GPUs x 31 days (Dec), 90 days (Q1), 30 days (April) x 24 h
    # awarded: gamma's December 100; Q1: alpha 900, beta 200 of 400 (Mar 17 - Apr 16),
    # gamma 300, delta 100; April: beta's other 200
    # used: alpha's 999 ending Dec 12; Q1: 100 + 50 + 40 + 10 + 20; the 5 ending Apr 1
    expected = [("2025-Q4", "2025-12-01", "2026-01-01", 5952.0, 100.0, 999.0),
                ("2026-Q1", "2026-01-01", "2026-04-01", 17280.0, 1500.0, 220.0),
                ("2026-Q2", "2026-04-01", "2026-05-01", 5760.0, 200.0, 5.0)]
    assert [(r["period"], r["from"], r["to"], r["capacity_gpu_hours"],
             r["awarded_gpu_hours"], r["used_gpu_hours"]) for r in t.rows] == [
        (p, f, to, pytest.approx(c), pytest.approx(a), pytest.approx(u))
        for p, f, to, c, a, u in expected]
    for r, (_, _, _, c, a, u) in zip(t.rows, expected, strict=True):
        assert r["awarded_capacity_share"] == pytest.approx(a / c)
        assert r["used_capacity_share"] == pytest.approx(u / c)
    assert t.totals == {"total_gpus": 8, "capacity_gpu_hours": pytest.approx(28992.0),
                        "awarded_gpu_hours": pytest.approx(1800.0),
                        "used_gpu_hours": pytest.approx(1224.0),
                        "awarded_capacity_share": pytest.approx(1800 / 28992),
                        "used_capacity_share": pytest.approx(1224 / 28992)}
    assert t.to_csv().splitlines()[2] == (
        "2026-Q1,2026-01-01,2026-04-01,17280.000,1500.000,220.000,0.087,0.013")
    assert any("8 GPUs" in a for a in t.assumptions)


def test_quarter_sums_match_the_other_sections(session: Session) -> None:
    build(session)
    rep = funder.funder_report(session, start=d(1, 1), end=d(4, 1), total_gpus=4)
    cap = rep.section("capacity")
    assert [r["period"] for r in cap.rows] == ["2026-Q1"]
    assert cap.totals["awarded_gpu_hours"] == pytest.approx(
        rep.section("kind").totals["awarded_gpu_hours"])
    assert cap.totals["used_gpu_hours"] == pytest.approx(
        rep.section("kind").totals["used_gpu_hours"])
    assert cap.rows[0]["capacity_gpu_hours"] == pytest.approx(4 * 90 * 24)


def test_unknown_inventory_leaves_capacity_empty(session: Session) -> None:
    build(session)
    t = funder.capacity_per_quarter(session, d(1, 1), d(4, 1), total_gpus=None)
    assert t.rows[0]["capacity_gpu_hours"] is None
    assert t.rows[0]["awarded_capacity_share"] is None
    assert t.rows[0]["awarded_gpu_hours"] == pytest.approx(1500.0)
    assert t.totals["capacity_gpu_hours"] is None
    assert any("unknown" in a for a in t.assumptions)
