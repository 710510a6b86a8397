"""Training-compute estimator: FLOPs -> GPU-hours -> days, energy, CO2 and cost.

Formulas (sources and defaults in docs/planning.md):

* training FLOPs  C = 6 * N * D                      (Kaplan et al. 2020, eq. 2.1; N = active
  parameters for mixture-of-experts, D = tokens)
  plus, when layers L, hidden size h and sequence length s are given, the attention term
  12 * L * h * s * D  (Narayanan et al. 2021, eq. 3 without recomputation; the same
  6N + 12LHQT as Chowdhery et al. 2022, PaLM, appendix B).
* compute-optimal tokens D ~ 20 * N when tokens are not given (Hoffmann et al. 2022).
* GPU-hours = C / (peak * MFU * efficiency) / 3600, where MFU is the steady-state
  model-FLOPs utilisation (default per GPU generation) and efficiency the end-to-end factor
  for restarts, failures, evaluation and idle time (default 0.8).
* wall-clock days = GPU-hours / GPUs / 24.
* FP8 (``precision="fp8"``, GPUs with FP8 tensor cores): throughput = BF16 throughput x
  an end-to-end FP8 speedup, default 1.3 — measured speedups of whole training runs,
  not the 2x of the tensor-core peaks: 1.22-1.28x for Llama 3 70B with MXFP8 on 1,856
  B200 (PyTorch/torchao blog, 2025), 1.30x for Llama 4 Scout with MXFP8 on GB200
  (torchao, 2025), "up to ~1.6x" for NVIDIA's low-precision recipes incl. NVFP4 (NVIDIA
  NeMo blog, 2025). Memory is estimated as for BF16 (FP8 recipes keep BF16/FP32 weights
  and optimizer states).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.energy import EnergyCost, EnergyParams, energy_and_cost
from rechenwerk.planning.hardware import Catalogue, GPUSpec, get_gpu
from rechenwerk.planning.memory import MemoryEstimate, memory_estimate

CHINCHILLA_TOKENS_PER_PARAM = 20.0
DEFAULT_EFFICIENCY = 0.80
DEFAULT_FP8_SPEEDUP = 1.3  # end-to-end, over BF16 on the same GPUs (module docstring)
PRECISIONS = ("bf16", "fp8")
MAX_GPUS = 1_000_000  # more accelerators than any centre in the world has
MAX_PARAMS = 1e14  # 100 trillion parameters
MAX_TOKENS = 1e16  # 10 quadrillion tokens
# Fewer than one parameter or token is no model and no training (and makes FLOPs per
# token zero: a division by zero).
MIN_PARAMS = MIN_TOKENS = 1.0
MIN_FRACTION = 1e-3  # smallest MFU and efficiency: 0.1 %

UNITS: dict[str, str] = {
    "params": "parameters",
    "tokens": "tokens",
    "training_flops": "FLOP",
    "peak_tflops": "TFLOP/s per GPU (dense BF16)",
    "tokens_per_second_per_gpu": "tokens/s per GPU (steady state)",
    "gpu_hours": "GPU-hours",
    "wall_clock_days": "days",
    "energy_mwh": "MWh",
    "co2_t": "t CO2e",
    "cost_cloud_eur": "EUR",
    "cost_own_eur": "EUR",
    "grid_intensity_g_per_kwh": "g CO2e/kWh",
    "it_power_per_gpu_w": "W",
    "model_state_gb": "GB",
    "activations_gb": "GB",
}


def _positive(value: float | None, name: str, *, upper: float, hint: str,
              lower: float = 0.0) -> None:
    """``value`` is None or a finite number in (0, ``upper``] and at least ``lower``."""
    if value is None:
        return
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{name} must be a positive number, got {value!r}", field=name,
                           hint=hint)
    if value < lower:
        raise InvalidInput(f"{name} = {value:g} is below the smallest sensible value "
                           f"{lower:g}", field=name, hint=hint)
    if value > upper:
        raise InvalidInput(f"{name} = {value:g} is absurdly large (limit {upper:g})",
                           field=name, hint=hint)


def _fraction(value: float | None, name: str, hint: str) -> None:
    # Below MIN_FRACTION the GPU-hours (C / (peak * MFU * efficiency)) leave the range of
    # a float: no estimate, and nothing a real run achieves.
    if value is None:
        return
    if not math.isfinite(value) or not MIN_FRACTION <= value <= 1:
        raise InvalidInput(f"{name} must be in [{MIN_FRACTION:g}, 1], got {value!r}",
                           field=name, hint=hint)


def _precision_speedup(spec: GPUSpec, precision: str, fp8_speedup: float | None) -> float:
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, got "
                           f"{precision!r}", field="precision")
    if precision == "bf16":
        if fp8_speedup is not None:
            raise InvalidInput("fp8_speedup applies only with precision fp8",
                               field="fp8_speedup", hint="Add precision fp8, or drop it.")
        return 1.0
    if spec.peak_fp8_tflops is None:
        raise InvalidInput(f"{spec.name} has no FP8 tensor cores", field="precision",
                           hint="FP8 needs Hopper or newer (H100, H200, GH200, B200) or "
                           "MI300X; use precision bf16 for this GPU.")
    ceiling = spec.peak_fp8_tflops / spec.peak_bf16_tflops
    speedup = DEFAULT_FP8_SPEEDUP if fp8_speedup is None else fp8_speedup
    if isinstance(speedup, bool) or not math.isfinite(speedup) or not 1 <= speedup <= ceiling:
        raise InvalidInput(
            f"fp8_speedup must be in [1, {ceiling:g}] for {spec.name} (its FP8/BF16 peak "
            f"ratio), got {speedup!r}", field="fp8_speedup",
            hint="Measured end-to-end speedups are 1.2-1.6 (docs/planning.md).")
    return float(min(speedup, ceiling))


def training_flops(
    active_params: float, tokens: float, *, layers: int | None = None,
    hidden: int | None = None, seq_len: int | None = None,
) -> tuple[float, str]:
    """Training FLOPs and the formula used (attention term only with the full shape)."""
    flops = 6.0 * active_params * tokens
    if layers and hidden and seq_len:
        return (flops + 12.0 * layers * hidden * seq_len * tokens,
                "6*N*D + 12*L*h*s*D (Kaplan et al. 2020; Narayanan et al. 2021)")
    return flops, "6*N*D (Kaplan et al. 2020)"


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    params: float
    active_params: float
    tokens: float
    tokens_source: str  # "given" or "compute-optimal (20 x params)"
    layers: int | None
    hidden: int | None
    seq_len: int | None
    gpu: GPUSpec
    gpus: int
    mfu: float
    mfu_source: str
    efficiency: float
    precision: str  # "bf16" or "fp8"
    precision_speedup: float  # 1.0 for bf16; the FP8 speedup over BF16 otherwise
    training_flops: float
    flops_formula: str
    gpu_hours: float
    wall_clock_days: float
    tokens_per_second_per_gpu: float
    energy: EnergyCost
    energy_params: EnergyParams
    memory: MemoryEstimate
    warnings: list[str] = field(default_factory=list)

    @property
    def effective_utilisation(self) -> float:
        return self.mfu * self.efficiency

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; quantity keys carry their unit (see ``units``)."""
        e = self.energy
        return {
            "model": {
                "params": self.params,
                "active_params": self.active_params,
                "tokens": self.tokens,
                "tokens_source": self.tokens_source,
                "layers": self.layers,
                "hidden": self.hidden,
                "seq_len": self.seq_len,
            },
            "hardware": {
                "gpu": self.gpu.name,
                "gpus": self.gpus,
                "peak_tflops": self.gpu.peak_bf16_tflops,
                "peak_fp8_tflops": self.gpu.peak_fp8_tflops,
                "memory_gb": self.gpu.memory_gb,
                "tdp_w": self.gpu.tdp_w,
            },
            "assumptions": {
                "mfu": self.mfu,
                "mfu_source": self.mfu_source,
                "efficiency": self.efficiency,
                "effective_utilisation": round(self.effective_utilisation, 4),
                "precision": self.precision,
                "precision_speedup": self.precision_speedup,
                "pue": self.energy_params.pue,
                "power_fraction": self.energy_params.power_fraction,
                "it_power_per_gpu_w": round(e.it_power_per_gpu_w, 1),
                "grid": e.grid.to_dict(),
                "electricity_eur_per_kwh": self.energy_params.electricity_eur_per_kwh,
                "cloud_eur_per_gpu_hour": e.cloud_eur_per_gpu_hour,
                "own_capex_eur_per_gpu_hour": round(e.own_capex_eur_per_gpu_hour, 4),
                "amortisation_years": self.energy_params.amortisation_years,
                "centre_utilisation": self.energy_params.centre_utilisation,
                "maintenance_fraction": self.energy_params.maintenance_fraction,
            },
            "training_flops": self.training_flops,
            "flops_formula": self.flops_formula,
            "tokens_per_second_per_gpu": round(self.tokens_per_second_per_gpu, 1),
            "gpu_hours": round(self.gpu_hours, 1),
            "wall_clock_days": round(self.wall_clock_days, 2),
            "energy_mwh": round(e.energy_mwh, 2),
            "grid_intensity_g_per_kwh": e.grid.g_per_kwh,
            "co2_t": round(e.co2_t, 2),
            "cost_cloud_eur": round(e.cost_cloud_eur, 0),
            "cost_own_eur": round(e.cost_own_eur, 0),
            "memory": self.memory.to_dict(),
            "warnings": list(self.warnings),
            "units": dict(UNITS),
        }


def estimate_training(
    *,
    params: float,
    gpu: str,
    gpus: int,
    tokens: float | None = None,
    active_params: float | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    seq_len: int | None = None,
    mfu: float | None = None,
    efficiency: float | None = None,
    energy: EnergyParams | None = None,
    sharding: str = "zero1",
    recompute: str = "selective",
    micro_batch: int = 1,
    catalogue: Catalogue | None = None,
    precision: str = "bf16",
    fp8_speedup: float | None = None,
) -> TrainingEstimate:
    """Estimate compute, time, energy, CO2, cost and memory feasibility of one training run.

    Raises :class:`InvalidInput` naming the field for zero/negative/absurd values, an
    unknown GPU (the hint lists the known ones), MFU or efficiency outside (0, 1].
    """
    _positive(params, "params", upper=MAX_PARAMS, lower=MIN_PARAMS,
              hint="total parameters, e.g. 70e9")
    _positive(active_params, "active_params", upper=MAX_PARAMS, lower=MIN_PARAMS,
              hint="parameters active per token (mixture-of-experts), e.g. 13e9")
    _positive(tokens, "tokens", upper=MAX_TOKENS, lower=MIN_TOKENS,
              hint="training tokens, e.g. 2e12; omit for compute-optimal 20 x params")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise InvalidInput(f"gpus must be a whole number >= 1, got {gpus!r}", field="gpus",
                           hint="number of GPUs the run uses, e.g. 1024")
    if gpus > MAX_GPUS:
        raise InvalidInput(
            f"gpus = {gpus:,} is more than any centre has (limit {MAX_GPUS:,})",
            field="gpus", hint="the largest clusters have some 100,000 GPUs",
        )
    _fraction(mfu, "mfu", "model-FLOPs utilisation, e.g. 0.4 (40% of the dense peak)")
    _fraction(efficiency, "efficiency",
              "end-to-end share of steady-state throughput, e.g. 0.8 (restarts, evaluation)")
    for name, value, upper in (("layers", layers, 10_000), ("hidden", hidden, 1_000_000),
                               ("seq_len", seq_len, 100_000_000)):
        if value is not None and (isinstance(value, bool) or not 1 <= value <= upper):
            raise InvalidInput(f"{name} must be a whole number in [1, {upper:,}], got {value!r}",
                               field=name)
    if active_params is not None and active_params > params:
        raise InvalidInput(
            f"active_params ({active_params:g}) exceeds params ({params:g})",
            field="active_params",
            hint="for mixture-of-experts give total params and the (smaller) active params",
        )
    energy = energy or EnergyParams()
    energy.validate()
    spec = get_gpu(gpu, catalogue=catalogue)
    speedup = _precision_speedup(spec, precision, fp8_speedup)

    warnings: list[str] = []
    active = active_params or params
    if tokens is None:
        tokens = CHINCHILLA_TOKENS_PER_PARAM * active
        tokens_source = "compute-optimal (20 x params, Hoffmann et al. 2022)"
    else:
        tokens_source = "given"
    flops, formula = training_flops(active, tokens, layers=layers, hidden=hidden,
                                    seq_len=seq_len)
    if mfu is None:
        mfu_used, mfu_source = spec.default_mfu, f"default for {spec.generation} GPUs"
    else:
        mfu_used, mfu_source = mfu, "given"
    eff = DEFAULT_EFFICIENCY if efficiency is None else efficiency
    # MFU is relative to the dense BF16 peak in both precisions (comparable across runs);
    # FP8 multiplies the steady-state throughput by the measured end-to-end speedup.
    gpu_hours = flops / (spec.peak_bf16_flops * mfu_used * speedup * eff) / 3600.0
    per_token = flops / tokens
    mem = memory_estimate(params_total=params, gpu=spec, gpus=gpus, sharding=sharding,
                          recompute=recompute, micro_batch=micro_batch, layers=layers,
                          hidden=hidden, seq_len=seq_len)
    if not mem.feasible:
        warnings.append(f"memory: {mem.message}")
    if mem.architecture.inferred:
        warnings.append(
            f"memory: layers/hidden not given; assumed {mem.architecture.layers} layers x "
            f"{mem.architecture.hidden} hidden, seq {mem.architecture.seq_len}")
    ec = energy_and_cost(spec, gpu_hours, energy)
    if ec.grid.approximate:
        warnings.append(f"grid intensity for {ec.grid.code} is approximate; "
                        "override with grid_intensity_g_per_kwh")
    days = gpu_hours / gpus / 24.0
    if days > 365:
        warnings.append(f"wall-clock time is {days:,.0f} days: more GPUs would be needed")
    return TrainingEstimate(
        params=params,
        active_params=active,
        tokens=tokens,
        tokens_source=tokens_source,
        layers=layers,
        hidden=hidden,
        seq_len=seq_len,
        gpu=spec,
        gpus=gpus,
        mfu=mfu_used,
        mfu_source=mfu_source,
        efficiency=eff,
        precision=precision,
        precision_speedup=speedup,
        training_flops=flops,
        flops_formula=formula,
        gpu_hours=gpu_hours,
        wall_clock_days=days,
        tokens_per_second_per_gpu=spec.peak_bf16_flops * mfu_used * speedup / per_token,
        energy=ec,
        energy_params=energy,
        memory=mem,
        warnings=warnings,
    )
