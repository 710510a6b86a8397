from __future__ import annotations

import math

import pytest

from rechenwerk.planning.hardware import get_gpu
from rechenwerk.planning.memory import activation_bytes, infer_architecture, memory_estimate
from rechenwerk.planning.training import estimate_training


def test_model_state_is_16_bytes_per_parameter() -> None:
    m = memory_estimate(params_total=70e9, gpu=get_gpu("A100-80GB"), gpus=1024)
    assert m.model_state_gb == pytest.approx(16 * 70)


def test_minimum_gpus_for_70b_on_a100_80gb() -> None:
    arch = dict(layers=80, hidden=8192, seq_len=4096, heads=64)
    m = memory_estimate(params_total=70e9, gpu=get_gpu("A100-80GB"), gpus=8, **arch)
    act = 80 * 4096 * 8192 * 34  # selective recomputation, micro-batch 1
    assert m.activations_gb == pytest.approx(act / 1e9)
    usable = 80e9 * 0.9
    assert m.min_gpus == math.ceil(16 * 70e9 / (usable - act / 8))
    assert not m.feasible
    big = memory_estimate(params_total=70e9, gpu=get_gpu("A100-80GB"), gpus=m.min_gpus or 0,
                          **arch)
    assert big.feasible


def test_zero_stages_shrink_per_gpu_memory() -> None:
    gpu = get_gpu("H100")
    totals = [
        memory_estimate(params_total=7e9, gpu=gpu, gpus=64, sharding=s).per_gpu_gb["total"]
        for s in ("none", "zero1", "zero2", "zero3")
    ]
    assert totals == sorted(totals, reverse=True)
    # 7B unsharded: 112 GB of state does not fit on one 80 GB GPU -> model parallel 2
    none = memory_estimate(params_total=7e9, gpu=gpu, gpus=64, sharding="none")
    assert none.model_parallel == 2
    z3 = memory_estimate(params_total=7e9, gpu=gpu, gpus=64, sharding="zero3")
    assert z3.model_parallel == 1
    assert z3.per_gpu_gb["weights"] == pytest.approx(2 * 7 / 64)


def test_recomputation_modes_order() -> None:
    arch = infer_architecture(7e9, layers=32, hidden=4096, seq_len=2048)
    none = activation_bytes(arch, 1, "none")
    sel = activation_bytes(arch, 1, "selective")
    full = activation_bytes(arch, 1, "full")
    assert full < sel < none
    assert sel == 32 * 2048 * 4096 * 34


def test_estimate_on_too_few_gpus_is_flagged() -> None:
    est = estimate_training(params=70e9, tokens=2e12, gpu="A100-80GB", gpus=8)
    assert not est.memory.feasible
    assert any("cannot hold the training state" in w for w in est.warnings)
    d = est.to_dict()
    assert d["memory"]["feasible"] is False
    assert d["memory"]["min_gpus"] > 8


def test_inferred_architecture_matches_the_parameter_count() -> None:
    arch = infer_architecture(70e9)
    assert arch.inferred
    assert 12 * arch.layers * arch.hidden**2 == pytest.approx(70e9, rel=0.05)
