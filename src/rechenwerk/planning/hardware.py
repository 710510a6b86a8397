"""The accelerator catalogue: peak throughput, memory, power and indicative prices.

The built-in catalogue is ``planning/data/hardware.yaml``; an operator extends or overrides
it with an extra YAML file of the same schema (setting ``RECHENWERK_HARDWARE_CATALOGUE``).
Look-ups accept the canonical name or an alias, case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rechenwerk.errors import FieldIssue, InvalidInput, invalid_input

_REQUIRED_NUMBERS = ("peak_bf16_tflops", "memory_gb", "memory_bandwidth_gbs", "tdp_w", "year")
# Host CPUs, memory, NICs and switches per GPU, as a fraction of the GPU's TDP, unless an
# entry states ``node_overhead_w`` (documented in docs/planning.md).
DEFAULT_NODE_OVERHEAD_FRACTION = 0.30


@dataclass(frozen=True, slots=True)
class GPUSpec:
    name: str
    vendor: str
    generation: str
    year: int
    peak_bf16_tflops: float  # dense BF16/FP16 tensor throughput
    peak_fp8_tflops: float | None
    memory_gb: float
    memory_bandwidth_gbs: float
    tdp_w: float
    node_overhead_w: float  # non-GPU IT power attributed to one GPU (host, network)
    capex_eur: float
    cloud_eur_per_gpu_hour: float
    default_mfu: float
    source: str
    aliases: tuple[str, ...] = ()

    @property
    def peak_bf16_flops(self) -> float:
        return self.peak_bf16_tflops * 1e12

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


@dataclass(frozen=True, slots=True)
class Catalogue:
    gpus: Mapping[str, GPUSpec]  # canonical name -> spec, in catalogue order
    sources: tuple[str, ...]  # files the catalogue was read from

    @property
    def names(self) -> list[str]:
        return list(self.gpus)

    def get(self, name: str, *, field: str = "gpu") -> GPUSpec:
        key = name.strip().upper()
        for spec in self.gpus.values():
            if spec.name.upper() == key or key in (a.upper() for a in spec.aliases):
                return spec
        raise InvalidInput(
            f"unknown GPU type {name!r}",
            field=field,
            hint="known GPU types: " + ", ".join(self.names)
            + " (add your own with RECHENWERK_HARDWARE_CATALOGUE=extra.yaml)",
        )


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"hardware catalogue {origin} is not valid YAML: {exc}",
            field="hardware_catalogue",
            hint="fix the YAML syntax (see planning/data/hardware.yaml for the schema)",
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(
            f"hardware catalogue {origin} must be a mapping with a 'gpus' key",
            field="hardware_catalogue",
        )
    return data


def _number(entry: Mapping[str, Any], key: str, loc: tuple[str | int, ...],
            issues: list[FieldIssue], *, required: bool) -> float | None:
    value = entry.get(key)
    if value is None:
        if required:
            issues.append(FieldIssue((*loc, key), "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        issues.append(FieldIssue((*loc, key), f"must be a positive number, got {value!r}"))
        return None
    return float(value)


def _parse_entries(
    data: Mapping[str, Any], origin: str, mfu_defaults: Mapping[str, float],
    base: Mapping[str, GPUSpec],
) -> dict[str, GPUSpec]:
    gpus = data.get("gpus") or {}
    if not isinstance(gpus, dict):
        raise InvalidInput(f"'gpus' in {origin} must be a mapping of name -> spec",
                           field="hardware_catalogue")
    out: dict[str, GPUSpec] = {}
    issues: list[FieldIssue] = []
    for name, entry in gpus.items():
        loc: tuple[str | int, ...] = ("gpus", str(name))
        if not isinstance(entry, dict):
            issues.append(FieldIssue(loc, "must be a mapping"))
            continue
        prev = base.get(str(name))
        merged: dict[str, Any] = prev.to_dict() if prev else {}
        merged.update(entry)
        nums = {k: _number(merged, k, loc, issues, required=True) for k in _REQUIRED_NUMBERS}
        fp8 = _number(merged, "peak_fp8_tflops", loc, issues, required=False)
        capex = _number(merged, "capex_eur", loc, issues, required=False)
        cloud = _number(merged, "cloud_eur_per_gpu_hour", loc, issues, required=False)
        overhead = _number(merged, "node_overhead_w", loc, issues, required=False)
        generation = str(merged.get("generation", ""))
        mfu = merged.get("default_mfu")
        regenerated = prev is not None and "generation" in entry and "default_mfu" not in entry
        if mfu is None or regenerated:
            mfu = mfu_defaults.get(generation)
        if mfu is None:
            issues.append(FieldIssue((*loc, "default_mfu"),
                                     f"give default_mfu or a generation with a default "
                                     f"({', '.join(mfu_defaults)})"))
            continue
        if not isinstance(mfu, int | float) or not 0 < float(mfu) <= 1:
            issues.append(FieldIssue((*loc, "default_mfu"), "must be in (0, 1]"))
            continue
        if any(v is None for v in nums.values()):
            continue
        tdp = float(nums["tdp_w"] or 0.0)
        aliases = merged.get("aliases") or ()
        out[str(name)] = GPUSpec(
            name=str(name),
            vendor=str(merged.get("vendor", "")),
            generation=generation,
            year=int(nums["year"] or 0),
            peak_bf16_tflops=float(nums["peak_bf16_tflops"] or 0.0),
            peak_fp8_tflops=fp8,
            memory_gb=float(nums["memory_gb"] or 0.0),
            memory_bandwidth_gbs=float(nums["memory_bandwidth_gbs"] or 0.0),
            tdp_w=tdp,
            node_overhead_w=overhead if overhead is not None
            else DEFAULT_NODE_OVERHEAD_FRACTION * tdp,
            capex_eur=capex or 0.0,
            cloud_eur_per_gpu_hour=cloud or 0.0,
            default_mfu=float(mfu),
            source=str(merged.get("source", origin)),
            aliases=tuple(str(a) for a in aliases),
        )
    if issues:
        raise invalid_input(
            issues, message=f"hardware catalogue {origin} has {len(issues)} invalid field(s)",
            field="hardware_catalogue",
            hint="see planning/data/hardware.yaml for the schema and units",
        )
    return out


@lru_cache(maxsize=8)
def load_catalogue(extra: str | None = None) -> Catalogue:
    """The built-in catalogue, extended/overridden by the YAML file ``extra`` if given."""
    builtin_text = resources.files("rechenwerk.planning").joinpath("data/hardware.yaml").read_text()
    builtin = _read_yaml(builtin_text, "planning/data/hardware.yaml")
    mfu_defaults = {str(k): float(v) for k, v in (builtin.get("mfu_defaults") or {}).items()}
    gpus = _parse_entries(builtin, "planning/data/hardware.yaml", mfu_defaults, {})
    sources = ["planning/data/hardware.yaml"]
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise InvalidInput(
                f"hardware catalogue file {extra} does not exist",
                field="hardware_catalogue",
                hint="set RECHENWERK_HARDWARE_CATALOGUE to an existing YAML file or unset it",
            )
        data = _read_yaml(path.read_text(), str(path))
        mfu_defaults.update({str(k): float(v) for k, v in (data.get("mfu_defaults") or {}).items()})
        gpus.update(_parse_entries(data, str(path), mfu_defaults, gpus))
        sources.append(str(path))
    return Catalogue(gpus=dict(gpus), sources=tuple(sources))


def default_catalogue() -> Catalogue:
    """The catalogue as configured by the settings (built-in + operator extension)."""
    from rechenwerk.config import get_settings

    extra = get_settings().hardware_catalogue
    return load_catalogue(extra or None)


def get_gpu(name: str, *, catalogue: Catalogue | None = None, field: str = "gpu") -> GPUSpec:
    return (catalogue or default_catalogue()).get(name, field=field)
