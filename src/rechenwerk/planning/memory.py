"""Memory feasibility: can N GPUs of a type hold the training state of a model?

Model state with mixed-precision Adam (Rajbhandari et al. 2020, ZeRO, section 3.1):
16 bytes per parameter = 2 (BF16 weights) + 2 (BF16 gradients) + 12 (FP32 master weights,
Adam first and second moments). The model-parallel group (tensor x pipeline, degree m)
splits all of it by m; ZeRO stage k additionally shards across the d = N / m data-parallel
replicas: stage 1 the optimizer states, stage 2 also the gradients, stage 3 also the weights.

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", section 4): per layer and micro-batch of b sequences of length s with
hidden size h and a heads, in 16-bit,

    no recomputation:        s*b*h*(34 + 5*a*s/h) bytes
    selective recomputation: s*b*h*34 bytes            (default: what Megatron-LM does)
    full recomputation:      s*b*h*2 bytes (layer inputs) + one layer without recomputation

With 1F1B pipelining the first stage holds p micro-batches of L/p layers, i.e. one
micro-batch of all L layers; only tensor/sequence parallelism (at most 8-way, inside a
node) divides activations. So per GPU: activations / min(m, 8).

Only ``usable_fraction`` (default 0.9) of the GPU memory is planned for: the rest goes to
the CUDA context, communication buffers and fragmentation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.hardware import GPUSpec

Sharding = Literal["none", "zero1", "zero2", "zero3"]
Recompute = Literal["none", "selective", "full"]
SHARDINGS: tuple[str, ...] = ("none", "zero1", "zero2", "zero3")
RECOMPUTES: tuple[str, ...] = ("none", "selective", "full")

BYTES_WEIGHTS = 2.0
BYTES_GRADS = 2.0
BYTES_OPTIMIZER = 12.0
MAX_TENSOR_PARALLEL = 8
DEFAULT_USABLE_FRACTION = 0.9
DEFAULT_SEQ_LEN = 4096
HEAD_DIM = 128
ASPECT_RATIO = 128  # hidden size / layers of typical dense LLMs (LLaMA-7B/13B, GPT-3)
GB = 1e9
MAX_MICRO_BATCH = 10_000  # sequences per GPU per step; real runs use 1 to a few hundred


@dataclass(frozen=True, slots=True)
class Architecture:
    layers: int
    hidden: int
    seq_len: int
    heads: int
    inferred: bool  # True when derived from the parameter count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def infer_architecture(
    params: float, *, layers: int | None = None, hidden: int | None = None,
    seq_len: int | None = None, heads: int | None = None,
) -> Architecture:
    """Fill in missing shape values from N ~ 12 * L * h^2 and h ~ 128 * L (documented)."""
    inferred = layers is None or hidden is None
    if hidden is None and layers is not None:
        hidden = max(HEAD_DIM, round(math.sqrt(params / (12.0 * layers)) / HEAD_DIM) * HEAD_DIM)
    if hidden is None:
        h = (ASPECT_RATIO * params / 12.0) ** (1.0 / 3.0)
        hidden = max(HEAD_DIM, round(h / HEAD_DIM) * HEAD_DIM)
    if layers is None:
        layers = max(1, round(params / (12.0 * hidden * hidden)))
    return Architecture(
        layers=layers,
        hidden=hidden,
        seq_len=seq_len or DEFAULT_SEQ_LEN,
        heads=heads or max(1, hidden // HEAD_DIM),
        inferred=inferred,
    )


def activation_bytes(arch: Architecture, micro_batch: int, recompute: str) -> float:
    """Activation memory of one micro-batch through all layers of one model replica."""
    sbh = float(arch.seq_len) * micro_batch * arch.hidden
    full_layer = sbh * (34.0 + 5.0 * arch.heads * arch.seq_len / arch.hidden)
    if recompute == "none":
        return arch.layers * full_layer
    if recompute == "selective":
        return arch.layers * sbh * 34.0
    return arch.layers * sbh * 2.0 + full_layer


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    gpu: str
    gpus: int
    sharding: str
    recompute: str
    architecture: Architecture
    params_total: float
    model_state_gb: float  # whole model, all 16 bytes/param
    activations_gb: float  # one micro-batch through one replica
    usable_gb_per_gpu: float
    min_gpus: int | None  # None: cannot fit at any count (activations too large)
    model_parallel: int | None  # smallest power-of-two m that fits on ``gpus``; None: none
    per_gpu_gb: dict[str, float]  # breakdown at that m (or at m = gpus if none fits)
    feasible: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["architecture"] = self.architecture.to_dict()
        return data


def per_gpu_bytes(params: float, act: float, gpus: int, m: int, sharding: str) -> dict[str, float]:
    d = max(1, gpus // m)
    weights = BYTES_WEIGHTS * params / m / (d if sharding == "zero3" else 1)
    grads = BYTES_GRADS * params / m / (d if sharding in ("zero2", "zero3") else 1)
    opt = BYTES_OPTIMIZER * params / m / (d if sharding != "none" else 1)
    acts = act / min(m, MAX_TENSOR_PARALLEL)
    return {"weights": weights, "gradients": grads, "optimizer": opt, "activations": acts,
            "total": weights + grads + opt + acts}


def _min_gpus(params: float, act: float, usable: float) -> int | None:
    """Smallest N whose aggregate memory holds the state with the state split N ways."""
    state = (BYTES_WEIGHTS + BYTES_GRADS + BYTES_OPTIMIZER) * params
    for n in range(1, MAX_TENSOR_PARALLEL):
        if state / n + act / n <= usable:
            return n
    room = usable - act / MAX_TENSOR_PARALLEL
    if room <= 0:
        return None
    return max(MAX_TENSOR_PARALLEL, math.ceil(state / room))


def memory_estimate(
    *, params_total: float, gpu: GPUSpec, gpus: int, sharding: str = "zero1",
    recompute: str = "selective", micro_batch: int = 1, layers: int | None = None,
    hidden: int | None = None, seq_len: int | None = None, heads: int | None = None,
    usable_fraction: float = DEFAULT_USABLE_FRACTION,
) -> MemoryEstimate:
    if sharding not in SHARDINGS:
        raise InvalidInput(f"unknown sharding {sharding!r}", field="sharding",
                           hint="one of: " + ", ".join(SHARDINGS))
    if recompute not in RECOMPUTES:
        raise InvalidInput(f"unknown activation recomputation {recompute!r}",
                           field="recompute", hint="one of: " + ", ".join(RECOMPUTES))
    if isinstance(micro_batch, bool) or not 1 <= micro_batch <= MAX_MICRO_BATCH:
        raise InvalidInput(f"micro_batch must be a whole number in [1, {MAX_MICRO_BATCH:,}], "
                           f"got {micro_batch!r}", field="micro_batch",
                           hint="sequences per GPU per step, e.g. 1 to 16")
    if not 0.1 <= usable_fraction <= 1.0:
        raise InvalidInput("usable_fraction must be in [0.1, 1]", field="usable_fraction")
    arch = infer_architecture(params_total, layers=layers, hidden=hidden, seq_len=seq_len,
                              heads=heads)
    act = activation_bytes(arch, micro_batch, recompute)
    usable = gpu.memory_gb * GB * usable_fraction
    state = (BYTES_WEIGHTS + BYTES_GRADS + BYTES_OPTIMIZER) * params_total
    min_n = _min_gpus(params_total, act, usable)

    # Smallest model-parallel degree that fits: powers of two below N, then N itself.
    candidates = [1 << k for k in range(gpus.bit_length()) if (1 << k) < gpus] + [gpus]
    chosen = next(
        (m for m in candidates
         if per_gpu_bytes(params_total, act, gpus, m, sharding)["total"] <= usable),
        None,
    )
    breakdown = per_gpu_bytes(params_total, act, gpus, chosen or gpus, sharding)
    feasible = chosen is not None
    if min_n is None:
        message = (f"one micro-batch of activations ({act / GB:,.0f} GB) does not fit even "
                   f"with {MAX_TENSOR_PARALLEL}-way tensor parallelism on {gpu.name}; use "
                   "full recomputation, a shorter sequence or a smaller micro-batch")
        feasible = False
    elif feasible:
        message = (f"fits: {breakdown['total'] / GB:,.1f} GB of {usable / GB:,.0f} GB usable "
                   f"per GPU with model parallelism {chosen} and {sharding}")
    else:
        message = (f"{gpus} x {gpu.name} cannot hold the training state "
                   f"({state / GB:,.0f} GB model state + {act / GB:,.0f} GB activations): "
                   f"at least {min_n} GPUs are needed")
    return MemoryEstimate(
        gpu=gpu.name,
        gpus=gpus,
        sharding=sharding,
        recompute=recompute,
        architecture=arch,
        params_total=params_total,
        model_state_gb=state / GB,
        activations_gb=act / GB,
        usable_gb_per_gpu=usable / GB,
        min_gpus=min_n,
        model_parallel=chosen,
        per_gpu_gb={k: v / GB for k, v in breakdown.items()},
        feasible=feasible,
        message=message,
    )
