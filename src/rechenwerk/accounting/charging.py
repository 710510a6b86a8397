"""Settle real usage against an award period, idempotently.

A run of a job is settled once, keyed by ``(job_id, attempt)``; a job imported from
Slurm once, keyed by ``external_id``. Settling again returns the existing record.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.accounting.balance import period_for
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.pay_per_use import run_cents
from rechenwerk.errors import InvalidInput
from rechenwerk.execution.gpu_use import GpuUse


def estimate_energy(gpu_type: str | None, gpu_hours: float, *,
                    at: datetime | None = None) -> tuple[float, float] | None:
    """(kWh incl. PUE, kg CO2e) for ``gpu_hours`` on ``gpu_type`` from the planning
    catalogue's power model and default grid, with the PUE of ``RECHENWERK_PUE_BY_PERIOD``
    for a run starting ``at`` (planning's default without); None for an unknown GPU type."""
    if not gpu_type or gpu_hours <= 0:
        return (0.0, 0.0) if gpu_type and gpu_hours == 0 else None
    from rechenwerk.config import get_settings
    from rechenwerk.errors import RechenwerkError
    from rechenwerk.planning.energy import EnergyParams, energy_and_cost
    from rechenwerk.planning.hardware import get_gpu

    try:
        params = EnergyParams(pue=get_settings().pue_at(at))
        cost = energy_and_cost(get_gpu(gpu_type), gpu_hours, params)
    except (RechenwerkError, KeyError, ValueError):
        return None
    return cost.energy_mwh * 1000.0, cost.co2_t * 1000.0


JOULES_PER_KWH = 3.6e6


def grid_g_per_kwh() -> float:
    """The grid intensity (g CO2e/kWh) the estimate uses: planning's default country."""
    from rechenwerk.planning.energy import EnergyParams, resolve_grid

    params = EnergyParams()
    return resolve_grid(params.country, params.grid_intensity_g_per_kwh).g_per_kwh


def measured_energy(joules: float, *, at: datetime | None = None) -> tuple[float, float]:
    """(kWh, kg CO2e) of a measured IT energy in joules (Slurm's ConsumedEnergy, the
    local executor's NVML or RAPL counters) as facility energy: the metered kWh x the
    PUE of ``RECHENWERK_PUE_BY_PERIOD`` for a run starting ``at``, as the estimate
    applies it, so measured and estimated kWh add up to one figure; CO2 with the
    estimate's grid intensity. The metered IT energy is ``kWh / PUE`` of that period."""
    from rechenwerk.config import get_settings

    kwh = joules / JOULES_PER_KWH * get_settings().pue_at(at)
    return kwh, kwh * grid_g_per_kwh() / 1000.0


def record_measured_energy(record: UsageRecord, joules: float | None) -> bool:
    """Replace a record's estimated energy by a measured one arriving later (Slurm's
    accounting after the run was settled from its live status); a measured figure is
    never overwritten. Returns True when it changed."""
    if joules is None or record.energy_source == "measured":
        return False
    record.energy_kwh, record.co2_kg = measured_energy(joules, at=record.started_at)
    record.energy_source = "measured"
    return True


def settle_usage(
    session: Session,
    *,
    project_id: int,
    gpus: int,
    started_at: datetime,
    ended_at: datetime,
    now: datetime,
    source: str = "local",
    job_id: int | None = None,
    attempt: int | None = None,
    external_id: str | None = None,
    award_period_id: int | None = None,
    gpu_type: str | None = None,
    energy_kwh: float | None = None,
    co2_kg: float | None = None,
    energy_measured: bool = False,
    gpu_use: GpuUse | None = None,
    gpu_use_note: str | None = None,
    account_id: int | None = None,
    price_e4_per_gpu_hour: int | None = None,
    cluster: str | None = None,
) -> UsageRecord:
    """Record GPU-hours = gpus x (ended_at - started_at) for one run. Idempotent. Energy
    and CO2 are estimated from the GPU type unless given; a given ``energy_kwh`` is
    recorded as measured only with ``energy_measured=True`` (Slurm's ConsumedEnergy or
    the local executor's counters, :func:`measured_energy`), otherwise as an estimate.

    A run of a job charged to a pay-per-use account (``account_id`` with the job's
    price) is charged GPU-hours x price in cents, once, with the record; it never
    draws on an award period."""
    if (job_id is None) == (external_id is None):
        raise InvalidInput("settle_usage needs exactly one of job_id or external_id")
    if job_id is not None:
        existing = session.scalars(
            select(UsageRecord).where(UsageRecord.job_id == job_id,
                                      UsageRecord.attempt == attempt)
        ).first()
    else:
        existing = session.scalars(
            select(UsageRecord).where(UsageRecord.external_id == external_id)
        ).first()
    if existing is not None:
        record_gpu_use(existing, gpu_use, gpu_use_note)
        return existing
    if gpus < 0:
        raise InvalidInput(f"gpus must not be negative (got {gpus})", field="gpus")
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    if account_id is not None and price_e4_per_gpu_hour is None:
        raise InvalidInput("a pay-per-use charge needs the job's price", field="price")
    if award_period_id is None and account_id is None:
        period = period_for(session, project_id, started_at) or period_for(
            session, project_id, ended_at
        )
        award_period_id = period.id if period is not None else None
    gpu_hours = gpus * seconds / 3600.0
    amount_cents = (None if account_id is None or price_e4_per_gpu_hour is None else
                    run_cents(gpus, started_at, ended_at, price_e4_per_gpu_hour))
    if energy_measured and energy_kwh is None:
        raise InvalidInput("a measured energy needs its kWh", field="energy_kwh")
    if energy_kwh is None and co2_kg is None:
        estimate = estimate_energy(gpu_type, gpu_hours, at=started_at)
        if estimate is not None:
            energy_kwh, co2_kg = estimate
    energy_source = (None if energy_kwh is None else
                     "measured" if energy_measured else "estimated")
    record = UsageRecord(
        job_id=job_id,
        attempt=attempt,
        project_id=project_id,
        award_period_id=award_period_id,
        account_id=account_id,
        price_e4_per_gpu_hour=price_e4_per_gpu_hour if account_id is not None else None,
        amount_cents=amount_cents,
        gpu_type=gpu_type,
        cluster=cluster,
        gpus=gpus,
        started_at=started_at,
        ended_at=max(ended_at, started_at),
        gpu_hours=gpu_hours,
        energy_kwh=energy_kwh,
        co2_kg=co2_kg,
        energy_source=energy_source,
        source=source,
        external_id=external_id,
        created_at=now,
    )
    record_gpu_use(record, gpu_use, gpu_use_note)
    session.add(record)
    session.flush()
    return record


def record_gpu_use(record: UsageRecord, use: GpuUse | None, note: str | None = None) -> bool:
    """Keep the run's GPU use on its record, once: figures that arrive later (Slurm's
    accounting after the run was settled from its live status) fill a record that has
    none; a measured record is never overwritten. Returns True when it changed."""
    if record.gpu_use_source is not None:
        return False
    if use is None:
        if note and record.gpu_use_note is None:
            record.gpu_use_note = note[:256]
            return True
        return False
    record.gpu_use_source = use.source
    record.gpu_measured = use.gpus
    record.gpu_util_mean_pct = use.mean_util_pct
    record.gpu_mem_max_bytes = use.max_mem_bytes
    record.gpu_idle_s = use.idle_gpu_s
    record.gpu_measured_s = use.measured_s
    record.gpu_use_note = None
    return True
