"""Call types as data, the pure rules (access/call_type_rules.py): consistency of a type,
a proposal's fit with field and limit named, due dates after cut-offs, the EuroHPC set."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from rechenwerk.access.call_type_rules import (
    EUROHPC_TYPES,
    CallTypeSpec,
    due_date,
    next_cutoff,
    proposal_issues,
    spec_issues,
)
from rechenwerk.errors import FieldIssue

TYPES = {t.key: t for t in EUROHPC_TYPES}


def _fields(issues: list[FieldIssue]) -> dict[str, str]:
    return {".".join(str(p) for p in i.loc): i.message for i in issues}


def test_eurohpc_types_are_consistent_and_carry_the_published_figures() -> None:
    for t in EUROHPC_TYPES:
        assert spec_issues(t) == [], t.key
    assert TYPES["playground"].decision_working_days == 2
    assert TYPES["playground"].review_steps == ("eligibility", "technical", "decision")
    assert TYPES["fast-lane"].max_gpu_hours == 50_000
    assert TYPES["fast-lane"].decision_working_days == 4
    assert TYPES["large-scale"].duration_months == (3, 6, 12)
    assert "scientific" in TYPES["large-scale"].review_steps


def test_inconsistent_type_names_each_field() -> None:
    bad = CallTypeSpec("x", "X", min_gpu_hours=10, max_gpu_hours=5, duration_months=(0,),
                       eligible_kinds=("pirates",), countries="mars",
                       review_steps=("technical", "eligibility", "poll"),
                       decision_working_days=-1, submission_mode="cutoffs")
    f = _fields(spec_issues(bad))
    assert "below min_gpu_hours 10" in f["max_gpu_hours"]
    assert "duration_months.0" in f and "eligible_kinds.0" in f and "countries" in f
    assert "'poll'" in f["review_steps.2"] and "in the order" in f["review_steps"]
    assert "decision_working_days" in f and "cutoff_period" in f


def test_proposal_fits_or_names_field_and_limit() -> None:
    fl = TYPES["fast-lane"]
    assert proposal_issues(fl, requested_gpu_hours=50_000, duration_months=3,
                           org_kind="sme", country="DE") == []
    f = _fields(proposal_issues(fl, requested_gpu_hours=60_000, duration_months=6,
                                org_kind="sme", country="US"))
    assert "60000 GPU-hours exceed the maximum of 50000" in f["requested_gpu_hours"]
    assert "6 months is not allowed" in f["duration_months"] and "1, 2, 3" in f[
        "duration_months"]
    assert "'US'" in f["organization.country"]
    ls = _fields(proposal_issues(TYPES["large-scale"], requested_gpu_hours=40_000,
                                 duration_months=None, org_kind="university", country="NO"))
    assert "below the minimum of 50001" in ls["requested_gpu_hours"]
    assert "is required" in ls["duration_months"]
    assert "organization.country" not in ls  # Norway is associated to Horizon Europe
    pg = _fields(proposal_issues(TYPES["playground"], requested_gpu_hours=100,
                                 duration_months=1, org_kind="university", country="DE"))
    assert "'university' are not eligible" in pg["organization.kind"]


@pytest.mark.parametrize(("submitted", "period", "cutoff"), [
    (date(2026, 12, 2), "monthly", date(2027, 1, 1)),
    (date(2026, 1, 1), "monthly", date(2026, 2, 1)),
    (date(2026, 12, 31), "quarterly", date(2027, 1, 1)),
    (date(2026, 2, 15), "quarterly", date(2026, 4, 1)),
    (date(2026, 4, 1), "quarterly", date(2026, 7, 1)),
])
def test_next_cutoff(submitted: date, period: str, cutoff: date) -> None:
    assert next_cutoff(submitted, period) == cutoff


def test_due_dates() -> None:
    # Playground (rolling, 2 working days): Friday 4 Dec 2026 -> Tuesday 8 Dec
    assert due_date(TYPES["playground"], date(2026, 12, 4)) == date(2026, 12, 8)
    # Large Scale: 10 working days after the next monthly cut-off (Fri 1 Jan 2027, a
    # holiday: counting starts after it) -> Fri 15 Jan 2027
    hol = {date(2027, 1, 1), date(2027, 1, 6)}
    assert due_date(TYPES["large-scale"], date(2026, 12, 10)) == date(2027, 1, 15)
    assert due_date(TYPES["large-scale"], date(2026, 12, 10), hol) == date(2027, 1, 18)
    window = replace(TYPES["fast-lane"], submission_mode="window")
    assert due_date(window, date(2026, 12, 24), {date(2026, 12, 25)}) == date(2026, 12, 31)
