"""Metrics on small cases computed by hand."""

from __future__ import annotations

import math

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.metrics import (
    JobOutcome,
    Timeline,
    compute_metrics,
    jain_index,
)


def out(
    job_id: str,
    project: str,
    gpus: int,
    submit: float,
    start: float,
    end: float,
    *,
    duration: float | None = None,
    preemptions: int = 0,
    lost_gpu_s: float = 0.0,
) -> JobOutcome:
    return JobOutcome(
        job_id=job_id,
        project=project,
        gpus=gpus,
        submit_time=submit,
        first_start_time=start,
        end_time=end,
        duration_s=end - start if duration is None else duration,
        preemptions=preemptions,
        lost_gpu_s=lost_gpu_s,
    )


def test_wait_jct_slowdown_utilisation_queue() -> None:
    outcomes = [out("a", "p", 1, 0, 0, 100), out("b", "p", 2, 0, 100, 150)]
    tl = Timeline(times=[0, 100, 150], busy_gpus=[1, 2, 0], queue_len=[1, 0, 0], total_gpus=2)
    m = compute_metrics(outcomes, tl)
    assert m.jobs == 2
    assert m.avg_wait_s == 50
    assert m.p50_wait_s == 50
    assert m.p90_wait_s == pytest.approx(90)
    assert m.p95_wait_s == pytest.approx(95)
    assert m.max_wait_s == 100
    assert m.avg_jct_s == 125
    # a: 100/100 = 1; b: 150/50 = 3
    assert m.avg_bounded_slowdown == 2
    assert m.makespan_s == 150
    assert (m.window_start_s, m.window_end_s) == (0, 150)
    assert m.utilization == pytest.approx(200 / 300)
    assert m.useful_utilization == pytest.approx(200 / 300)
    assert m.avg_queue_len == pytest.approx(100 / 150)
    assert m.max_queue_len == 1
    assert m.gpu_hours == pytest.approx(200 / 3600)
    assert m.jain_fairness == 1.0  # a single project


def test_bounded_slowdown_uses_10s_floor_and_is_at_least_one() -> None:
    # 1 s job waiting 19 s: JCT 20 / max(1, 10) = 2 ; 0 s job never waiting: floored to 1
    outcomes = [out("a", "p", 1, 0, 19, 20), out("b", "p", 1, 5, 5, 5)]
    tl = Timeline(times=[0, 19, 20], busy_gpus=[0, 1, 0], queue_len=[1, 0, 0], total_gpus=1)
    m = compute_metrics(outcomes, tl)
    assert m.p50_bounded_slowdown == pytest.approx(1.5)
    assert m.avg_bounded_slowdown == pytest.approx(1.5)


def test_utilisation_window_is_first_submit_to_last_end() -> None:
    # first submit at 50: timeline samples before the window do not count
    outcomes = [out("a", "p", 4, 50, 50, 150)]
    tl = Timeline(times=[0, 50, 150], busy_gpus=[4, 4, 0], queue_len=[0, 0, 0], total_gpus=8)
    m = compute_metrics(outcomes, tl)
    assert m.makespan_s == 100
    assert m.utilization == pytest.approx(0.5)


def test_utilisation_from_outcomes_when_timeline_is_empty() -> None:
    outcomes = [out("a", "p", 2, 0, 0, 100, lost_gpu_s=50.0, duration=75)]
    m = compute_metrics(outcomes, Timeline(times=[], busy_gpus=[], queue_len=[], total_gpus=2))
    assert m.utilization == pytest.approx((150 + 50) / 200)
    assert m.useful_utilization == pytest.approx(150 / 200)
    assert m.lost_gpu_hours == pytest.approx(50 / 3600)


def test_jain_index_extremes() -> None:
    assert jain_index([1.0, 1.0, 1.0, 1.0]) == 1.0
    assert jain_index([3.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert jain_index([2.0, 1.0]) == pytest.approx(9 / 10)
    assert jain_index([]) == 1.0


def test_jain_equal_for_concurrent_equal_service() -> None:
    outcomes = [out("a", "A", 1, 0, 0, 100), out("b", "B", 1, 0, 0, 100)]
    tl = Timeline(times=[0, 100], busy_gpus=[2, 0], queue_len=[0, 0], total_gpus=2)
    m = compute_metrics(outcomes, tl, fairness_window_s=10)
    assert m.jain_fairness == pytest.approx(1.0)
    for p in m.per_project:
        assert p.fair_ratio == pytest.approx(1.0)
        assert p.received_fraction == pytest.approx(0.5)
        assert p.share == pytest.approx(0.5)


def test_jain_serial_service_in_windows() -> None:
    # one GPU; A runs first, B waits. Windows of 100 s:
    # w1: delivered 100, both demand 100 -> entitled 50/50, A got 100
    # w2: delivered 100, only B demands -> entitled B 100
    # x_A = 100/50 = 2, x_B = 100/150 = 2/3 -> Jain = (8/3)^2 / (2 * (4 + 4/9)) = 0.8
    outcomes = [out("a", "A", 1, 0, 0, 100), out("b", "B", 1, 0, 100, 200)]
    tl = Timeline(times=[0, 200], busy_gpus=[1, 0], queue_len=[1, 0], total_gpus=1)
    m = compute_metrics(outcomes, tl, fairness_window_s=100)
    assert m.jain_fairness == pytest.approx(0.8)
    by = {p.project: p for p in m.per_project}
    assert by["A"].entitled_gpu_hours == pytest.approx(50 / 3600)
    assert by["B"].entitled_gpu_hours == pytest.approx(150 / 3600)
    assert by["A"].fair_ratio == pytest.approx(2.0)
    # one window over the whole run: every project got what it was entitled to
    whole = compute_metrics(outcomes, tl, fairness_window_s=1000)
    assert whole.jain_fairness == pytest.approx(1.0)


def _weighted_case() -> list[JobOutcome]:
    # 4 GPUs; A and B each submit four 1-GPU jobs of 100 s at t=0.
    # [0,100): A runs 3, B runs 1; [100,200): A runs 1, B runs 3.
    jobs = [out(f"a{i}", "A", 1, 0, 0, 100) for i in range(3)]
    jobs.append(out("a3", "A", 1, 0, 100, 200))
    jobs.append(out("b0", "B", 1, 0, 0, 100))
    jobs += [out(f"b{i}", "B", 1, 0, 100, 200) for i in range(1, 4)]
    return jobs


def test_jain_respects_given_shares() -> None:
    tl = Timeline(times=[0, 200], busy_gpus=[4, 0], queue_len=[4, 0], total_gpus=4)
    m = compute_metrics(_weighted_case(), tl, shares={"A": 3, "B": 1}, fairness_window_s=100)
    assert m.jain_fairness == pytest.approx(1.0)
    by = {p.project: p for p in m.per_project}
    assert by["A"].share == pytest.approx(0.75)
    # equal shares: w1 entitled 200/200 -> x_A = 400/300, x_B = 400/500
    eq = compute_metrics(_weighted_case(), tl, fairness_window_s=100)
    xa, xb = 4 / 3, 0.8
    assert eq.jain_fairness == pytest.approx((xa + xb) ** 2 / (2 * (xa**2 + xb**2)))


def test_per_project_gpu_hours_and_waits() -> None:
    m = compute_metrics(
        _weighted_case(),
        Timeline(times=[0, 200], busy_gpus=[4, 0], queue_len=[4, 0], total_gpus=4),
    )
    by = {p.project: p for p in m.per_project}
    assert by["A"].jobs == 4 and by["B"].jobs == 4
    assert by["A"].gpu_hours == pytest.approx(400 / 3600)
    assert by["A"].avg_wait_s == 25
    assert by["B"].avg_wait_s == 75
    d = m.to_dict()
    assert d["per_project"]["B"]["avg_wait_s"] == 75
    assert set(d) >= {
        "jobs",
        "avg_jct_s",
        "p50_wait_s",
        "p95_wait_s",
        "utilization",
        "jain_fairness",
        "makespan_s",
    }


def test_preempted_job_counts_lost_work() -> None:
    o = out("a", "p", 2, 0, 0, 300, duration=200, preemptions=1, lost_gpu_s=100)
    m = compute_metrics([o], Timeline(times=[], busy_gpus=[], queue_len=[], total_gpus=2))
    assert m.preemptions == 1
    assert m.per_project[0].received_gpu_hours == pytest.approx(500 / 3600)
    assert m.per_project[0].gpu_hours == pytest.approx(400 / 3600)


def test_errors_are_clear() -> None:
    tl = Timeline(times=[], busy_gpus=[], queue_len=[], total_gpus=1)
    with pytest.raises(InvalidInput, match="no share given for project"):
        compute_metrics([out("a", "X", 1, 0, 0, 1)], tl, shares={"Y": 1})
    with pytest.raises(InvalidInput, match="inconsistent outcome"):
        compute_metrics([out("a", "X", 1, 5, 0, 1, duration=1)], tl)
    with pytest.raises(InvalidInput, match="fairness window"):
        compute_metrics([], tl, fairness_window_s=0)


def test_empty_run() -> None:
    m = compute_metrics([], Timeline(times=[], busy_gpus=[], queue_len=[], total_gpus=8))
    assert m.jobs == 0 and m.jain_fairness == 1.0 and not math.isnan(m.utilization)


def test_waiting_short_job_demands_at_most_its_run_time_per_window() -> None:
    # one GPU. A's 100 s job runs [0, 100); B's 10 s job waits [0, 100) then runs.
    # window 100 s: B's demand in w1 = 1 GPU x min(100, 10) = 10 GPU-s, A's = 100.
    # delivered 100 -> max-min: B entitled 10, A 90. w2 [100, 110): only B: 10.
    outcomes = [out("a", "A", 1, 0, 0, 100), out("b", "B", 1, 0, 100, 110)]
    tl = Timeline(times=[0, 110], busy_gpus=[1, 0], queue_len=[1, 0], total_gpus=1)
    m = compute_metrics(outcomes, tl, fairness_window_s=100)
    by = {p.project: p for p in m.per_project}
    assert by["B"].entitled_gpu_hours == pytest.approx(20 / 3600)
    assert by["A"].entitled_gpu_hours == pytest.approx(90 / 3600)
    xa, xb = 100 / 90, 10 / 20
    assert m.jain_fairness == pytest.approx((xa + xb) ** 2 / (2 * (xa**2 + xb**2)))


def test_requeued_job_waits_after_its_first_start() -> None:
    # LAS-like: every job starts at once, so only the requeue time shows unfairness.
    # one GPU; B's job starts at 0, is preempted at 50 (no work lost) and resumes at 150;
    # A's 100 s job runs [50, 150). Window 200 s (one window):
    # B held 100 GPU-s over [0, 200) -> rate 0.5, waits at rate 0.5 -> demand 200;
    # A demand 100. Delivered 200 -> max-min: A 100, B 100 -> fair.
    outcomes = [
        out("a", "A", 1, 50, 50, 150),
        out("b", "B", 1, 0, 0, 200, duration=100, preemptions=1),
    ]
    tl = Timeline(times=[0, 200], busy_gpus=[1, 0], queue_len=[0, 0], total_gpus=1)
    assert compute_metrics(outcomes, tl, fairness_window_s=200).jain_fairness == 1.0
    # 50 s windows. B's held GPU-time and its requeue wait are both spread evenly over
    # [0, 200): B receives 25 and demands 50 in every window; A receives/demands 50 in w2
    # and w3. w2, w3: delivered 75, max-min 37.5 each. Entitled A 75, B 25+75+25 = 125:
    # x_A = 100/75, x_B = 100/125 (exact intervals would give 2 and 2/3).
    m = compute_metrics(outcomes, tl, fairness_window_s=50)
    by = {p.project: p for p in m.per_project}
    assert by["A"].fair_ratio == pytest.approx(4 / 3)
    assert by["B"].fair_ratio == pytest.approx(0.8)
    assert m.jain_fairness == pytest.approx((4 / 3 + 0.8) ** 2 / (2 * (16 / 9 + 0.64)))


def test_to_dict_is_json_serialisable() -> None:
    import json

    m = compute_metrics(
        _weighted_case(),
        Timeline(times=[0, 200], busy_gpus=[4, 0], queue_len=[4, 0], total_gpus=4),
    )
    back = json.loads(json.dumps(m.to_dict()))
    assert back["jobs"] == 8 and back["per_project"]["A"]["jobs"] == 4
    assert back["utilization"] == pytest.approx(1.0)
