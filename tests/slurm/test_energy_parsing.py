"""Slurm's ConsumedEnergy from ``sacct --json`` / slurmdbd documents, and the measured
kWh the accounting import charges (no Slurm needed).

The development clusters run no acct_gather_energy plugin (their recorded documents,
fixtures/slurm-24.11, carry energy -2 = NO_VAL64 and 0 per step), so the samples in
data/sacct_energy_v0.0.*.json are written with the field names of Slurm's data_parser
(22.05 openapi/dbv0.0.38 parse.c; 24.05+ data_parser v0.0.41/42 parsers.c): the job's
``tres.allocated`` ``energy`` count, each step's ``statistics.energy.consumed`` and the
steps' energy TRES (joules in ``tres.requested``, watts in ``tres.consumed``).
Job 4711 carries the job figure, 4712 only its steps' figures, 4713 none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import make_award, make_project, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_import import import_accounting
from rechenwerk.execution.slurm import v0_0_38, v0_0_40, v0_0_41, v0_0_42
from rechenwerk.execution.slurm.energy import consumed_energy_j
from rechenwerk.execution.slurm.types import SlurmJob
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.slurm_import import settle_own_job

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures" / "slurm-24.11" / "rest"


def _doc(version: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"sacct_energy_{version}.json").read_text()))


@pytest.mark.parametrize(("module", "sample"), [
    (v0_0_38, "v0.0.38"), (v0_0_40, "v0.0.41"), (v0_0_41, "v0.0.41"), (v0_0_42, "v0.0.41")])
def test_consumed_energy_per_version(module: ModuleType, sample: str) -> None:
    jobs = {j.job_id: j for j in module.parse_accounted_jobs(_doc(sample))}
    assert jobs["4711"].consumed_energy_j == 10_800_000.0  # the allocation's energy TRES
    assert jobs["4712"].consumed_energy_j == 5_400_000.0  # 3.6 MJ + 1.8 MJ of its steps
    assert jobs["4713"].consumed_energy_j is None  # 0 / NO_VAL64: not measured
    assert jobs["4711"].gpus == 4


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_recorded_documents_without_an_energy_plugin_give_none(version: str) -> None:
    doc = json.loads((FIXTURES / version / "db-jobs-finished.json").read_text())["body"]
    jobs = doc["jobs"]
    assert jobs and all(consumed_energy_j(j) is None for j in jobs)


def test_watts_of_the_written_usage_are_not_read_as_energy() -> None:
    job = _doc("v0.0.38")["jobs"][1]  # no allocation figure
    for step in job["steps"]:
        step["statistics"]["energy"]["consumed"] = 0
    # tres.consumed.total holds the current power (W), never joules
    assert consumed_energy_j(job) is None


class _Transport:
    def __init__(self, jobs: Sequence[SlurmJob]) -> None:
        self.jobs = list(jobs)

    def accounted_jobs(self, **_: Any) -> list[SlurmJob]:
        return self.jobs


def test_import_charges_measured_kwh_and_co2(session: Session) -> None:
    make_project(session, slug="p-energy")
    jobs = v0_0_41.parse_accounted_jobs(_doc("v0.0.41"))
    now = max(j.end_time for j in jobs if j.end_time is not None) + timedelta(hours=1)

    def not_ours(session: Session, sj: SlurmJob, *, now: datetime) -> None:
        return None

    report = import_accounting(session, _Transport(jobs), own_jobs=not_ours,  # type: ignore[arg-type]
                               now=now)
    assert report.settled_new == 3
    recs = {r.external_id: r for r in session.scalars(select(UsageRecord))}
    by_job = {str(k).rsplit(":", 1)[1]: v for k, v in recs.items()}
    # the nodes' IT energy (3.0 and 1.5 kWh) x the default PUE 1.2
    assert by_job["4711"].energy_source == "measured"
    assert by_job["4711"].energy_kwh == pytest.approx(3.6)
    assert by_job["4711"].co2_kg == pytest.approx(3.6 * 0.381)  # DE grid, 381 g/kWh
    assert by_job["4712"].energy_source == "measured"
    assert by_job["4712"].energy_kwh == pytest.approx(1.8)
    # no figure from Slurm and no GPU type to estimate with: no energy at all
    assert (by_job["4713"].energy_source, by_job["4713"].energy_kwh) == (None, None)


def test_own_job_settled_estimated_then_measured_once(session: Session) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi, slug="p-energy")
    make_award(session, project)
    sj = next(j for j in v0_0_41.parse_accounted_jobs(_doc("v0.0.41")) if j.job_id == "4711")
    assert sj.start_time is not None and sj.end_time is not None
    job = Job(project_id=project.id, user_id=pi.id, name="train", spec={}, state="running",
              qos="normal", requested_qos="normal", over_budget=False, gpus=4,
              walltime_s=7200, attempt=1, attained_gpu_s=0.0, gpu_type="A100-80GB",
              submitted_at=sj.start_time, started_at=sj.start_time, backend="slurm",
              backend_handle="4711", updated_at=sj.start_time)
    session.add(job)
    session.flush()
    sj = replace(sj, comment=f"rechenwerk:{job.id}.1")
    now = sj.end_time + timedelta(minutes=5)
    # the poll saw the end first, without Slurm's accounting: estimated
    settled = settle_own_job(session, replace(sj, consumed_energy_j=None), now=now)
    assert settled is not None and settled.record.energy_source == "estimated"
    again = settle_own_job(session, sj, now=now)
    assert again is not None and again.record.id == settled.record.id
    assert again.record.energy_source == "measured"
    assert again.record.energy_kwh == pytest.approx(3.6)  # 3.0 kWh IT x PUE 1.2
    assert again.record.co2_kg == pytest.approx(3.6 * 0.381)
    settle_own_job(session, replace(sj, consumed_energy_j=1.0e9), now=now)
    assert again.record.energy_kwh == pytest.approx(3.6)  # a measured figure is kept


def test_earlier_runs_of_a_requeued_job_get_their_measured_energy(
        session: Session) -> None:
    from rechenwerk.accounting.charging import settle_usage

    pi = make_user(session)
    project = make_project(session, pi=pi, slug="p-energy")
    make_award(session, project)
    sj = next(j for j in v0_0_41.parse_accounted_jobs(_doc("v0.0.41")) if j.job_id == "4711")
    assert sj.start_time is not None and sj.end_time is not None
    first_start = sj.start_time - timedelta(hours=3)
    first_end = sj.start_time - timedelta(hours=2)
    # Slurm requeued run 1 (node failure); run 2 is the record's latest; the poll
    # settled run 1 with its estimate
    job = Job(project_id=project.id, user_id=pi.id, name="train", spec={}, state="running",
              qos="normal", requested_qos="normal", over_budget=False, gpus=4,
              walltime_s=7200, attempt=2, attained_gpu_s=0.0, gpu_type="A100-80GB",
              submitted_at=first_start, started_at=sj.start_time, backend="slurm",
              backend_handle="4711", updated_at=sj.start_time)
    session.add(job)
    session.flush()
    run1 = settle_usage(session, project_id=project.id, gpus=4, started_at=first_start,
                        ended_at=first_end, now=first_end, source="slurm", job_id=job.id,
                        attempt=1, gpu_type="A100-80GB")
    assert run1.energy_source == "estimated"
    earlier = replace(sj, start_time=first_start, end_time=first_end, state="NODE_FAIL",
                      consumed_energy_j=1.8e6, earlier_runs=())
    sj = replace(sj, comment=f"rechenwerk:{job.id}.1", requeue_count=1,
                 earlier_runs=(earlier,))
    settled = settle_own_job(session, sj, now=sj.end_time + timedelta(minutes=5))
    assert settled is not None and settled.record.attempt == 2
    assert settled.record.energy_kwh == pytest.approx(3.6)  # 3.0 kWh IT x PUE 1.2
    # run 1: 0.5 kWh metered x PUE 1.2, replacing its estimate
    assert (run1.energy_source, run1.energy_kwh) == ("measured", pytest.approx(0.6))
