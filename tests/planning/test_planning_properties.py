"""Properties of the estimator that hold for any valid input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rechenwerk.planning.hardware import get_gpu, load_catalogue
from rechenwerk.planning.memory import memory_estimate
from rechenwerk.planning.training import estimate_training

GPUS = load_catalogue().names
params_st = st.floats(min_value=1e8, max_value=2e12)
tokens_st = st.floats(min_value=1e9, max_value=3e13)


@settings(max_examples=60, deadline=None)
@given(params=params_st, tokens=tokens_st, gpu=st.sampled_from(GPUS),
       gpus=st.integers(min_value=1, max_value=100_000),
       mfu=st.floats(min_value=0.05, max_value=1.0))
def test_gpu_hours_scale_with_work_and_inversely_with_mfu(
    params: float, tokens: float, gpu: str, gpus: int, mfu: float
) -> None:
    one = estimate_training(params=params, tokens=tokens, gpu=gpu, gpus=gpus, mfu=mfu)
    two = estimate_training(params=params, tokens=2 * tokens, gpu=gpu, gpus=gpus, mfu=mfu / 2)
    assert two.gpu_hours == pytest.approx(4 * one.gpu_hours)
    assert one.wall_clock_days * 24 * gpus == pytest.approx(one.gpu_hours)
    assert one.energy.energy_mwh > 0 and one.energy.co2_t >= 0
    # energy and cost are proportional to GPU-hours
    assert two.energy.energy_mwh == pytest.approx(4 * one.energy.energy_mwh)
    assert two.energy.cost_cloud_eur == pytest.approx(4 * one.energy.cost_cloud_eur)


@settings(max_examples=60, deadline=None)
@given(params=params_st, gpu=st.sampled_from(GPUS))
def test_minimum_gpus_is_feasible_and_one_less_is_not(params: float, gpu: str) -> None:
    spec = get_gpu(gpu)
    m = memory_estimate(params_total=params, gpu=spec, gpus=1)
    if m.min_gpus is None:
        return
    at_min = memory_estimate(params_total=params, gpu=spec, gpus=m.min_gpus)
    assert at_min.feasible
    if m.min_gpus > 1:
        below = memory_estimate(params_total=params, gpu=spec, gpus=m.min_gpus - 1)
        assert not below.feasible
