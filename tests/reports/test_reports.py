"""Report queries against a hand-checkable centre, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from report_data import JAN, Centre, add_job, add_usage
from sqlalchemy.orm import Session

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.energy import DEFAULT_POWER_FRACTION, DEFAULT_PUE
from rechenwerk.planning.hardware import default_catalogue
from rechenwerk.reports.service import energy_report, size_class, usage_report, waits_report
from rechenwerk.reports.tables import Scope, resolve_range, scope_for
from rechenwerk.reports.utilisation import utilisation_report

ALL = Scope(None)
START, END = JAN, JAN + timedelta(days=59)


def _by_key(table) -> dict:
    return {r["key"]: r for r in table.rows}


def test_usage_by_project_sums_settled_hours_in_range(session: Session, centre: Centre) -> None:
    t = usage_report(session, scope=ALL, by="project", start=START, end=END)
    rows = _by_key(t)
    assert rows["alpha"]["gpu_hours"] == pytest.approx(30.0)
    assert rows["beta"]["gpu_hours"] == pytest.approx(5.0)  # the 99 h record is out of range
    assert [r["key"] for r in t.rows] == ["alpha", "beta"]  # largest first
    assert rows["alpha"]["share"] == pytest.approx(30 / 35)
    assert t.totals["gpu_hours"] == pytest.approx(35.0)


def test_usage_by_org_kind_call_gpu_type(session: Session, centre: Centre) -> None:
    org = _by_key(usage_report(session, scope=ALL, by="org", start=START, end=END))
    assert org["Uni Heidelberg"]["gpu_hours"] == pytest.approx(30.0)
    assert org["Tiny AI SARL"]["label"] == "sme"
    kind = _by_key(usage_report(session, scope=ALL, by="kind", start=START, end=END))
    assert kind["university"]["gpu_hours"] == pytest.approx(30.0)
    assert kind["sme"]["gpu_hours"] == pytest.approx(5.0)
    call = _by_key(usage_report(session, scope=ALL, by="call", start=START, end=END))
    assert call["research-1"]["gpu_hours"] == pytest.approx(30.0)
    assert call["research-1"]["label"] == "research"
    assert call["(none)"]["gpu_hours"] == pytest.approx(5.0)
    mode = _by_key(usage_report(session, scope=ALL, by="mode", start=START, end=END))
    assert mode["research"]["gpu_hours"] == pytest.approx(30.0)
    assert mode["direct award (no call)"]["gpu_hours"] == pytest.approx(5.0)
    gpu = _by_key(usage_report(session, scope=ALL, by="gpu-type", start=START, end=END))
    assert gpu["A100-80GB"]["gpu_hours"] == pytest.approx(15.0)
    assert gpu["H100-SXM"]["gpu_hours"] == pytest.approx(20.0)


def test_usage_by_month_and_week(session: Session, centre: Centre) -> None:
    t = usage_report(session, scope=ALL, by="period", bucket="month", start=START, end=END)
    assert [(r["key"], round(r["gpu_hours"], 6)) for r in t.rows] == [
        (datetime(2026, 1, 1, tzinfo=UTC), 15.0),
        (datetime(2026, 2, 1, tzinfo=UTC), 20.0),
    ]
    weeks = usage_report(session, scope=ALL, by="period", bucket="week", start=START, end=END)
    assert all(r["key"].weekday() == 0 for r in weeks.rows)  # weeks start on Monday
    assert sum(r["gpu_hours"] for r in weeks.rows) == pytest.approx(35.0)


def test_members_see_only_their_projects(session: Session, centre: Centre) -> None:
    scope = scope_for(session, centre.pi_beta)
    t = usage_report(session, scope=scope, by="project", start=START, end=END)
    assert [r["key"] for r in t.rows] == ["beta"]
    assert scope_for(session, centre.operator).project_ids is None
    w = waits_report(session, scope=scope, by="qos", start=START, end=END)
    assert w.totals["jobs"] == 1


def test_utilisation_splits_runs_over_days(session: Session, centre: Centre) -> None:
    # A fresh range with one 2-GPU run from Mar 1 12:00 to Mar 2 12:00 on a 4-GPU centre.
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    add_usage(session, centre.alpha, start=t0, hours=48.0, gpus=2)
    session.commit()
    t = utilisation_report(session, scope=ALL, start=datetime(2026, 3, 1, tzinfo=UTC),
                           end=datetime(2026, 3, 3, tzinfo=UTC), total_gpus=4,
                           now=datetime(2026, 4, 1, tzinfo=UTC), bucket="day")
    assert [round(r["busy_gpu_hours"], 6) for r in t.rows] == [24.0, 24.0]
    assert [round(r["utilisation"], 6) for r in t.rows] == [0.25, 0.25]
    assert t.totals["capacity_gpu_hours"] == pytest.approx(4 * 48)


def test_utilisation_counts_running_jobs_until_now(session: Session, centre: Centre) -> None:
    now = datetime(2026, 3, 10, 6, tzinfo=UTC)
    add_job(session, centre.alpha, centre.pi_alpha, submitted=datetime(2026, 3, 10, tzinfo=UTC),
            wait_h=0.0, gpus=2, state="running")
    session.commit()
    t = utilisation_report(session, scope=ALL, start=datetime(2026, 3, 10, tzinfo=UTC),
                           end=datetime(2026, 3, 11, tzinfo=UTC), total_gpus=4, now=now)
    assert t.rows[0]["busy_gpu_hours"] == pytest.approx(12.0)  # 2 GPUs x 6 h
    assert t.rows[0]["capacity_gpu_hours"] == pytest.approx(24.0)  # only up to now
    assert t.rows[0]["utilisation"] == pytest.approx(0.5)


def test_waits_median_and_p90_by_qos_and_size(session: Session, centre: Centre) -> None:
    t = waits_report(session, scope=ALL, by="qos-size", start=START, end=END)
    rows = {(r["qos"], r["size"]): r for r in t.rows}
    small = rows[("normal", "1 GPU")]
    assert small["jobs"] == 3
    assert small["median_wait_h"] == pytest.approx(2.0)
    assert small["p90_wait_h"] == pytest.approx(2.8)  # linear interpolation of 1, 2, 3
    assert rows[("high", "9-64 GPUs")]["median_wait_h"] == pytest.approx(10.0)
    assert rows[("normal", "2-8 GPUs")]["median_wait_h"] == pytest.approx(4.0)
    assert t.totals["jobs"] == 5  # the pending job has no wait yet
    by_size = {r["size"]: r for r in waits_report(session, scope=ALL, by="size", start=START,
                                                   end=END).rows}
    assert set(by_size) == {"1 GPU", "2-8 GPUs", "9-64 GPUs"}


def test_energy_uses_catalogue_power_pue_and_grid(session: Session, centre: Centre) -> None:
    t = energy_report(session, scope=ALL, start=START, end=END, country="FR")
    cat = default_catalogue()
    a100, h100 = cat.get("A100-80GB"), cat.get("H100-SXM")

    def mwh(spec, hours):
        return hours * (spec.tdp_w * DEFAULT_POWER_FRACTION + spec.node_overhead_w) \
            * DEFAULT_PUE / 1e6

    rows = {r["project"]: r for r in t.rows}
    expected_alpha = mwh(a100, 10.0) + mwh(h100, 20.0)
    assert rows["alpha"]["energy_mwh"] == pytest.approx(expected_alpha)
    assert rows["alpha"]["co2_t"] == pytest.approx(expected_alpha * 1000 * 56 / 1e6)  # FR grid
    assert rows["beta"]["gpu_hours"] == pytest.approx(5.0)
    assert any("PUE 1.2" in a for a in t.assumptions)
    assert any("56" in a for a in t.assumptions)


def test_csv_and_json_have_unit_labels(session: Session, centre: Centre) -> None:
    t = usage_report(session, scope=ALL, by="project", start=START, end=END)
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == ["Project", "Title", "GPU-hours", "Runs", "Share of GPU-hours"]
    assert rows[1][0] == "alpha" and float(rows[1][2]) == pytest.approx(30.0)
    d = t.to_dict()
    assert d["columns"][2] == {"key": "gpu_hours", "label": "GPU-hours"}
    assert d["rows"][0]["key"] == "alpha"


def test_bad_input_names_the_field(session: Session, centre: Centre) -> None:
    with pytest.raises(InvalidInput) as e:
        usage_report(session, scope=ALL, by="colour", start=START, end=END)
    assert e.value.field == "by" and "project" in (e.value.hint or "")
    with pytest.raises(InvalidInput) as e:
        resolve_range(END, START, now=END)
    assert e.value.field == "from"
    with pytest.raises(InvalidInput):
        utilisation_report(session, scope=ALL, start=START, end=END, total_gpus=0, now=END)


def test_size_classes() -> None:
    assert [size_class(g) for g in (1, 2, 8, 9, 64, 65, 600)] == [
        "1 GPU", "2-8 GPUs", "2-8 GPUs", "9-64 GPUs", "9-64 GPUs", "65-512 GPUs", ">512 GPUs"]


def test_waits_by_organisation_kind(session: Session, centre: Centre) -> None:
    # do SMEs and startups wait longer than research groups? (issue 19, fair access)
    t = waits_report(session, scope=ALL, by="kind", start=START, end=END)
    rows = {r["kind"]: r for r in t.rows}
    assert set(rows) == {"university", "sme"} and t.columns[0].label == "Organisation kind"
    assert rows["university"]["jobs"] == 4  # alpha's waits 1, 2, 3 and 10 h
    assert rows["university"]["median_wait_h"] == pytest.approx(2.5)
    assert rows["sme"]["median_wait_h"] == pytest.approx(4.0)  # beta's started job
    by_size = {(r["kind"], r["size"]): r["jobs"] for r in waits_report(
        session, scope=ALL, by="kind-size", start=START, end=END).rows}
    assert by_size == {("university", "1 GPU"): 3, ("university", "9-64 GPUs"): 1,
                       ("sme", "2-8 GPUs"): 1}


def test_energy_report_takes_measured_figures_and_says_which(
        session: Session, centre: Centre) -> None:
    rec = add_usage(session, centre.beta, start=JAN + timedelta(days=3), hours=8.0, gpus=4)
    rec.energy_kwh, rec.energy_source = 2500.0, "measured"  # Slurm's ConsumedEnergy
    session.flush()
    t = energy_report(session, scope=ALL, start=START, end=END, country="FR")
    a100 = default_catalogue().get("A100-80GB")
    estimated_beta = 5.0 * (a100.tdp_w * DEFAULT_POWER_FRACTION + a100.node_overhead_w) \
        * DEFAULT_PUE / 1e6
    rows = {r["project"]: r for r in t.rows}
    beta = rows["beta"]
    assert beta["measured_mwh"] == pytest.approx(2.5)  # as recorded (PUE in it), no model
    assert beta["estimated_mwh"] == pytest.approx(estimated_beta)
    assert beta["energy_mwh"] == pytest.approx(2.5 + estimated_beta)
    assert beta["co2_t"] == pytest.approx((2.5 + estimated_beta) * 56 / 1000)  # FR grid
    assert beta["basis"] == "mixed" and rows["alpha"]["basis"] == "estimated"
    assert t.totals["measured_mwh"] == pytest.approx(2.5) and t.totals["basis"] == "mixed"
    assert any(a.startswith("Measured: 2.500 MWh") for a in t.assumptions)
    # --pue for all: the metered IT energy (2500 kWh / the month's PUE 1.2) x 1.1
    fixed = energy_report(session, scope=ALL, start=START, end=END, pue=1.1)
    assert {r["project"]: r for r in fixed.rows}["beta"]["measured_mwh"] == pytest.approx(
        2.5 / DEFAULT_PUE * 1.1)
