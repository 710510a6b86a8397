"""Request schemas of the planning API (also the stored input of a proposal's estimate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from rechenwerk.errors import invalid_input, issues_from_validation
from rechenwerk.planning.energy import EnergyParams, merge_params
from rechenwerk.planning.training import TrainingEstimate, estimate_training


class CostInputs(BaseModel):
    """Energy, CO2 and cost assumptions; every field is optional (defaults documented)."""

    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(default=None, description="grid country code, e.g. DE, FR")
    grid_intensity_g_per_kwh: float | None = Field(default=None, description="custom g CO2e/kWh")
    pue: float | None = Field(default=None, description="power usage effectiveness, default 1.2")
    power_fraction: float | None = Field(default=None, description="mean GPU power / TDP")
    node_overhead_w: float | None = Field(default=None, description="non-GPU W per GPU")
    electricity_eur_per_kwh: float | None = None
    cloud_eur_per_gpu_hour: float | None = None
    capex_eur_per_gpu: float | None = None
    amortisation_years: float | None = None
    centre_utilisation: float | None = None
    maintenance_fraction: float | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``true`` is no number: pydantic would read it as 1 (``gpus: true`` as 1 GPU)."""
        if isinstance(v, bool) and info.field_name in _NUMERIC_FIELDS:
            raise ValueError(f"must be a number, not {str(v).lower()}")
        return v

    def energy_params(self) -> EnergyParams:
        return merge_params(EnergyParams(), self.model_dump(include=set(CostInputs.model_fields)))


class TrainRequest(CostInputs):
    """Inputs of one training estimate (``POST /api/v1/plan/train``)."""

    params: float = Field(..., description="total parameters, e.g. 70e9")
    tokens: float | None = Field(default=None, description="training tokens; omitted: 20 x params")
    active_params: float | None = Field(default=None, description="active parameters (MoE)")
    gpu: str = Field(..., description="GPU type from the catalogue, e.g. A100-80GB")
    gpus: int = Field(..., description="number of GPUs")
    mfu: float | None = Field(default=None, description="steady-state MFU in (0, 1]")
    efficiency: float | None = Field(default=None, description="end-to-end efficiency in (0, 1]")
    layers: int | None = None
    hidden: int | None = None
    seq_len: int | None = None
    sharding: str = Field(default="zero1", description="none, zero1, zero2, zero3")
    recompute: str = Field(default="selective", description="none, selective, full")
    micro_batch: int = 1
    precision: str = Field(default="bf16", description="bf16, or fp8 (Hopper and newer)")
    fp8_speedup: float | None = Field(
        default=None, description="end-to-end FP8 speedup over BF16 (default 1.3)")

    def estimate(self) -> TrainingEstimate:
        return estimate_training(
            params=self.params, tokens=self.tokens, active_params=self.active_params,
            gpu=self.gpu, gpus=self.gpus, mfu=self.mfu, efficiency=self.efficiency,
            layers=self.layers, hidden=self.hidden, seq_len=self.seq_len,
            energy=self.energy_params(), sharding=self.sharding, recompute=self.recompute,
            micro_batch=self.micro_batch, precision=self.precision,
            fp8_speedup=self.fp8_speedup,
        )


_NUMERIC_FIELDS = frozenset(
    name for model in (CostInputs, TrainRequest)
    for name, f in model.model_fields.items()
    if any(t in (int, float) for t in (f.annotation, *get_args(f.annotation))))


def estimate_from_inputs(inputs: Mapping[str, Any]) -> TrainingEstimate:
    """Validate a plain mapping (e.g. a proposal's stored inputs) and estimate it.

    Schema errors and domain errors both become :class:`InvalidInput` naming the field.
    """
    try:
        req = TrainRequest.model_validate(dict(inputs))
    except ValidationError as exc:
        raise invalid_input(
            issues_from_validation(exc), prefix="invalid training estimate input: ",
            hint="give at least params, gpu and gpus (see docs/planning.md)",
        ) from exc
    return req.estimate()
