"""Energy, CO2 and cost of GPU-hours.

Energy of a run (documented in docs/planning.md)::

    IT power per GPU  = TDP x power_fraction + node_overhead_w
    energy [kWh]      = GPU-hours x IT power per GPU [kW] x PUE

CO2 [t CO2e] = energy [kWh] x grid intensity [g/kWh] / 1e6.
Cost: cloud = GPU-hours x price per GPU-hour; own hardware = GPU-hours x capex per GPU-hour
(capex / (amortisation years x 8760 h x centre utilisation), plus maintenance as a share of
capex per year) + energy x electricity price.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.hardware import GPUSpec

HOURS_PER_YEAR = 8760.0

# Defaults (sources and reasoning in docs/planning.md).
DEFAULT_PUE = 1.2  # modern air/liquid-cooled HPC centres report 1.05-1.3
DEFAULT_POWER_FRACTION = 0.85  # mean GPU board power during LLM training / TDP
DEFAULT_IDLE_POWER_FRACTION = 0.20  # idle GPU board power / TDP (centre sizing only)
DEFAULT_COUNTRY = "DE"
DEFAULT_ELECTRICITY_EUR_PER_KWH = 0.20  # EU industrial price incl. taxes, 2024 order of magnitude
DEFAULT_AMORTISATION_YEARS = 5.0
DEFAULT_CENTRE_UTILISATION = 0.80  # share of owned GPU-hours that are sold/used
DEFAULT_MAINTENANCE_FRACTION = 0.08  # maintenance and support per year, share of capex


PueSchedule = tuple[tuple[str, float], ...]  # ((first month "YYYY-MM", PUE), ...) sorted
_PUE_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def parse_pue_by_period(text: str) -> PueSchedule:
    """``"2026-01:1.35,2026-07:1.25"`` (each PUE from that month on, UTC) -> sorted
    schedule; InvalidInput naming ``pue_by_period`` for anything else."""
    out: dict[str, float] = {}
    hint = ('give comma-separated YYYY-MM:PUE pairs, each PUE from that month on, '
            'e.g. "2026-01:1.35,2026-07:1.25"')
    for item in (i.strip() for i in text.replace(";", ",").split(",")):
        if not item:
            continue
        month, sep, value = item.partition(":")
        m = _PUE_MONTH_RE.match(month.strip())
        if not sep or m is None or not 1 <= int(m.group(2)) <= 12:
            raise InvalidInput(f"pue_by_period: {item!r} is not YYYY-MM:PUE",
                               field="pue_by_period", hint=hint)
        try:
            pue = float(value)
        except ValueError:
            raise InvalidInput(f"pue_by_period: the PUE of {item!r} is not a number",
                               field="pue_by_period", hint=hint) from None
        if not 1.0 <= pue <= 3.0:
            raise InvalidInput(f"pue_by_period: PUE {pue:g} of {month} is out of range "
                               "[1.0, 3.0]", field="pue_by_period",
                               hint="PUE is >= 1.0 (1.0 = no cooling overhead)")
        if month in out:
            raise InvalidInput(f"pue_by_period: {month} is given twice",
                               field="pue_by_period", hint=hint)
        out[month.strip()] = pue
    return tuple(sorted(out.items()))


def pue_at(schedule: PueSchedule, at: datetime | None) -> float:
    """The PUE for a run starting ``at``: the latest schedule entry whose month has begun
    by then; DEFAULT_PUE before the first entry, without a schedule or without ``at``."""
    if at is None:
        return DEFAULT_PUE
    key = f"{at.astimezone(UTC):%Y-%m}"
    pue = DEFAULT_PUE
    for month, value in schedule:
        if month <= key:
            pue = value
    return pue


@dataclass(frozen=True, slots=True)
class GridIntensity:
    code: str
    name: str
    g_per_kwh: float
    year: int | None
    source: str
    approximate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def grid_intensities() -> dict[str, GridIntensity]:
    text = resources.files("rechenwerk.planning").joinpath("data/grid_intensity.yaml").read_text()
    data = yaml.safe_load(text)
    year = int(data["year"])
    source = str(data["source"])
    return {
        str(code).upper(): GridIntensity(
            code=str(code).upper(),
            name=str(entry["name"]),
            g_per_kwh=float(entry["g_per_kwh"]),
            year=year,
            source=source,
            approximate=bool(entry.get("approximate", False)),
        )
        for code, entry in data["countries"].items()
    }


def resolve_grid(country: str | None, custom_g_per_kwh: float | None) -> GridIntensity:
    """A custom intensity wins over the country; otherwise look the country code up."""
    if custom_g_per_kwh is not None:
        if not 0 <= custom_g_per_kwh <= 2000:
            raise InvalidInput(
                f"grid intensity {custom_g_per_kwh} g CO2e/kWh is out of range",
                field="grid_intensity_g_per_kwh",
                hint="give a value between 0 and 2000 g CO2e/kWh (coal power is ~1000)",
            )
        return GridIntensity("CUSTOM", "custom value", float(custom_g_per_kwh), None, "user input")
    table = grid_intensities()
    code = (country or DEFAULT_COUNTRY).strip().upper()
    if code not in table:
        raise InvalidInput(
            f"unknown country code {country!r} for the grid carbon intensity",
            field="country",
            hint="known: " + ", ".join(table) + "; or give a custom grid_intensity_g_per_kwh",
        )
    return table[code]


@dataclass(frozen=True, slots=True)
class EnergyParams:
    pue: float = DEFAULT_PUE
    power_fraction: float = DEFAULT_POWER_FRACTION
    node_overhead_w: float | None = None  # None -> from the catalogue entry
    country: str = DEFAULT_COUNTRY
    grid_intensity_g_per_kwh: float | None = None
    electricity_eur_per_kwh: float = DEFAULT_ELECTRICITY_EUR_PER_KWH
    cloud_eur_per_gpu_hour: float | None = None  # None -> from the catalogue entry
    capex_eur_per_gpu: float | None = None  # None -> from the catalogue entry
    amortisation_years: float = DEFAULT_AMORTISATION_YEARS
    centre_utilisation: float = DEFAULT_CENTRE_UTILISATION
    maintenance_fraction: float = DEFAULT_MAINTENANCE_FRACTION

    def validate(self) -> None:
        checks: list[tuple[str, float | None, float, float, str]] = [
            ("pue", self.pue, 1.0, 3.0, "PUE is >= 1.0 (1.0 = no cooling overhead)"),
            ("power_fraction", self.power_fraction, 0.01, 1.5, "mean power / TDP, e.g. 0.85"),
            ("node_overhead_w", self.node_overhead_w, 0.0, 10000.0, "watts per GPU, e.g. 150"),
            ("electricity_eur_per_kwh", self.electricity_eur_per_kwh, 0.0, 10.0,
             "EUR per kWh, e.g. 0.20"),
            ("cloud_eur_per_gpu_hour", self.cloud_eur_per_gpu_hour, 0.0, 1000.0,
             "EUR per GPU-hour, e.g. 2.5"),
            ("capex_eur_per_gpu", self.capex_eur_per_gpu, 0.0, 1e7, "EUR per GPU, e.g. 35000"),
            ("amortisation_years", self.amortisation_years, 0.5, 30.0, "years, e.g. 5"),
            ("centre_utilisation", self.centre_utilisation, 0.01, 1.0, "fraction, e.g. 0.8"),
            ("maintenance_fraction", self.maintenance_fraction, 0.0, 1.0,
             "share of capex per year, e.g. 0.08"),
        ]
        for name, value, lo, hi, hint in checks:
            if value is not None and not lo <= value <= hi:
                raise InvalidInput(f"{name} = {value} is out of range [{lo}, {hi}]",
                                   field=name, hint=hint)
        resolve_grid(self.country, self.grid_intensity_g_per_kwh)


@dataclass(frozen=True, slots=True)
class EnergyCost:
    it_power_per_gpu_w: float
    energy_mwh: float
    grid: GridIntensity
    co2_t: float
    cloud_eur_per_gpu_hour: float
    cost_cloud_eur: float
    own_capex_eur_per_gpu_hour: float
    own_energy_cost_eur: float
    cost_own_eur: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "it_power_per_gpu_w": round(self.it_power_per_gpu_w, 1),
            "energy_mwh": self.energy_mwh,
            "grid_intensity_g_per_kwh": self.grid.g_per_kwh,
            "grid": self.grid.to_dict(),
            "co2_t": self.co2_t,
            "cloud_eur_per_gpu_hour": self.cloud_eur_per_gpu_hour,
            "cost_cloud_eur": self.cost_cloud_eur,
            "own_capex_eur_per_gpu_hour": self.own_capex_eur_per_gpu_hour,
            "own_energy_cost_eur": self.own_energy_cost_eur,
            "cost_own_eur": self.cost_own_eur,
        }


def it_power_per_gpu_w(gpu: GPUSpec, params: EnergyParams) -> float:
    overhead = gpu.node_overhead_w if params.node_overhead_w is None else params.node_overhead_w
    return gpu.tdp_w * params.power_fraction + overhead


def own_capex_per_gpu_hour(gpu: GPUSpec, params: EnergyParams) -> float:
    capex = gpu.capex_eur if params.capex_eur_per_gpu is None else params.capex_eur_per_gpu
    per_year = capex / params.amortisation_years + capex * params.maintenance_fraction
    return per_year / (HOURS_PER_YEAR * params.centre_utilisation)


def energy_and_cost(gpu: GPUSpec, gpu_hours: float, params: EnergyParams) -> EnergyCost:
    power_w = it_power_per_gpu_w(gpu, params)
    energy_kwh = gpu_hours * power_w / 1000.0 * params.pue
    grid = resolve_grid(params.country, params.grid_intensity_g_per_kwh)
    cloud = (gpu.cloud_eur_per_gpu_hour if params.cloud_eur_per_gpu_hour is None
             else params.cloud_eur_per_gpu_hour)
    capex_h = own_capex_per_gpu_hour(gpu, params)
    energy_eur = energy_kwh * params.electricity_eur_per_kwh
    return EnergyCost(
        it_power_per_gpu_w=power_w,
        energy_mwh=energy_kwh / 1000.0,
        grid=grid,
        co2_t=energy_kwh * grid.g_per_kwh / 1e6,
        cloud_eur_per_gpu_hour=cloud,
        cost_cloud_eur=gpu_hours * cloud,
        own_capex_eur_per_gpu_hour=capex_h,
        own_energy_cost_eur=energy_eur,
        cost_own_eur=gpu_hours * capex_h + energy_eur,
    )


def yearly_centre_cost(
    gpu: GPUSpec, gpus: int, utilisation: float, params: EnergyParams,
    idle_power_fraction: float = DEFAULT_IDLE_POWER_FRACTION,
) -> dict[str, float]:
    """Investment and yearly operating cost of a centre of ``gpus`` GPUs at ``utilisation``."""
    capex = gpu.capex_eur if params.capex_eur_per_gpu is None else params.capex_eur_per_gpu
    overhead = gpu.node_overhead_w if params.node_overhead_w is None else params.node_overhead_w
    gpu_w = gpu.tdp_w * (idle_power_fraction
                         + (params.power_fraction - idle_power_fraction) * utilisation)
    energy_kwh = gpus * (gpu_w + overhead) / 1000.0 * HOURS_PER_YEAR * params.pue
    grid = resolve_grid(params.country, params.grid_intensity_g_per_kwh)
    return {
        "capex_eur": gpus * capex,
        "energy_mwh_per_year": energy_kwh / 1000.0,
        "energy_eur_per_year": energy_kwh * params.electricity_eur_per_kwh,
        "maintenance_eur_per_year": gpus * capex * params.maintenance_fraction,
        "opex_eur_per_year": energy_kwh * params.electricity_eur_per_kwh
        + gpus * capex * params.maintenance_fraction,
        "amortisation_eur_per_year": gpus * capex / params.amortisation_years,
        "co2_t_per_year": energy_kwh * grid.g_per_kwh / 1e6,
        "gpu_hours_per_year": gpus * HOURS_PER_YEAR * utilisation,
    }


def merge_params(base: EnergyParams, overrides: Mapping[str, Any]) -> EnergyParams:
    """``base`` with the non-None values of ``overrides`` (unknown keys are an error)."""
    known = set(EnergyParams.__dataclass_fields__)
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise InvalidInput(
            f"unknown cost/energy parameter(s): {', '.join(unknown)}",
            field=unknown[0],
            hint="known: " + ", ".join(sorted(known)),
        )
    data = asdict(base)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return EnergyParams(**data)
