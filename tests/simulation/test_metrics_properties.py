"""Property tests: the weighted max-min split and Jain's index."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rechenwerk.simulation.metrics import _water_fill, jain_index

demands = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    d=demands,
    w=st.lists(st.floats(0.01, 100, allow_nan=False), min_size=8, max_size=8),
    frac=st.floats(0, 1),
)
def test_water_fill_is_weighted_max_min(d: list[float], w: list[float], frac: float) -> None:
    demand = np.array(d)[:, None]
    weights = np.array(w[: len(d)])
    delivered = np.array([frac * demand.sum()])
    e = _water_fill(delivered, demand, weights)[:, 0]
    tol = 1e-6 * max(1.0, float(demand.sum()))
    assert np.all(e >= -tol) and np.all(e <= demand[:, 0] + tol)
    assert e.sum() == np.float64(e.sum())  # finite
    assert abs(e.sum() - delivered[0]) <= tol
    # max-min: a project short of its demand has the highest normalised allocation
    level = e / weights
    short = e < demand[:, 0] - tol
    if short.any():
        assert np.all(level <= level[short].min() + tol / weights.min())


@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=20))
@example(xs=[3.375189082201178e-162, 3.375189082201178e-162])  # squares underflowed
def test_jain_is_between_1_over_n_and_1(xs: list[float]) -> None:
    j = jain_index(xs)
    if any(xs):
        assert 1 / len(xs) - 1e-9 <= j <= 1 + 1e-9
    else:
        assert j == 1.0
