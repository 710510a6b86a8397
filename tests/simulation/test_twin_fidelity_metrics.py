"""The twin's comparison figures: Spearman's rho, percentiles, start errors, utilisation."""

from __future__ import annotations

import math

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.fidelity import (
    JobTimes,
    compare,
    percentile,
    ranks,
    spearman,
    utilisation,
)


def test_ranks_average_ties() -> None:
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_spearman_perfect_reversed_and_monotone() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(xs, xs) == pytest.approx(1.0)
    assert spearman(xs, xs[::-1]) == pytest.approx(-1.0)
    # any strictly increasing transform keeps the ranks
    assert spearman(xs, [math.exp(x) for x in xs]) == pytest.approx(1.0)


def test_spearman_with_ties_matches_the_textbook_value() -> None:
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)


def test_spearman_undefined_for_constant_side() -> None:
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


def test_percentile_interpolates_like_numpy() -> None:
    vals = [4.0, 1.0, 3.0, 2.0]
    assert percentile(vals, 50) == pytest.approx(2.5)
    assert percentile(vals, 90) == pytest.approx(3.7)
    assert percentile([7.0], 90) == 7.0
    assert math.isnan(percentile([], 50))


def test_utilisation_clips_to_the_window() -> None:
    jobs = {"a": JobTimes(0, 0, 10, 2), "b": JobTimes(0, 5, 30, 1)}
    # window [0, 20] on 4 GPUs: a 2x10 + b 1x15 = 35 of 80
    assert utilisation(jobs, 4, 0, 20) == pytest.approx(35 / 80)


def test_compare_errors_relative_to_the_real_mean_wait() -> None:
    real = {
        "a": JobTimes(0, 0, 10, 1),
        "b": JobTimes(0, 10, 20, 1),
        "c": JobTimes(0, 20, 30, 1),
        "d": JobTimes(0, 30, 40, 1),
    }
    sim = {
        "a": JobTimes(0, 0, 10, 1),
        "b": JobTimes(0, 12, 22, 1),
        "c": JobTimes(0, 24, 34, 1),
        "d": JobTimes(0, 36, 46, 1),
        "only-sim": JobTimes(0, 0, 1, 1),
    }
    f = compare(real, sim, capacity=1)
    assert f.jobs == 4
    # errors 0, 2, 4, 6 -> median 3, p90 5.4; real mean wait 15
    assert f.median_abs_error_s == pytest.approx(3.0)
    assert f.p90_abs_error_s == pytest.approx(5.4)
    assert f.mean_wait_real_s == pytest.approx(15.0)
    assert f.mean_wait_sim_s == pytest.approx(18.0)
    assert f.median_rel_error == pytest.approx(0.2)
    assert f.spearman == pytest.approx(1.0)
    assert f.utilisation_real == pytest.approx(1.0)
    assert f.makespan_sim_s == 46.0


def test_compare_refuses_disjoint_schedules() -> None:
    with pytest.raises(InvalidInput, match="no job in common"):
        compare({"a": JobTimes(0, 0, 1, 1)}, {"b": JobTimes(0, 0, 1, 1)}, 1)
