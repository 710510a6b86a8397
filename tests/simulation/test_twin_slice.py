"""The twin's trace slice and its Slurm-timing options in the simulator."""

from __future__ import annotations

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.simulation.cluster import uniform_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.slurm_conf import parse_slurm_conf
from rechenwerk.simulation.traces.base import TraceJob
from rechenwerk.simulation.twin import SlurmTiming, prepare_slice, simulate, trace_of


def _trace() -> list[TraceJob]:
    return [
        TraceJob("a", 1000.0, 3000.0, 1),
        TraceJob("b", 1150.0, 40.0, 3),
        TraceJob("c", 1260.0, 99999.0, 16),  # wider than the cluster
        TraceJob("d", 1300.0, 500.0, 6),
    ]


def test_prepare_slice_scales_rounds_caps_and_clips() -> None:
    jobs = prepare_slice(
        _trace(),
        start=0,
        count=10,
        scale=100,
        max_duration_s=20,
        gpus_per_node=4,
        nodes=2,
        cpus_per_gpu=4,
    )
    assert [j.submit_s for j in jobs] == [0, 2, 3, 3]  # (t - 1000) / 100, rounded
    assert [j.duration_s for j in jobs] == [20, 1, 20, 5]  # capped at 20, at least 1
    assert [(j.gpus, j.nodes, j.cpus_per_node) for j in jobs] == [
        (1, 1, 4),
        (3, 1, 12),
        (8, 2, 16),
        (8, 2, 16),
    ]  # > one node: whole nodes
    assert [j.time_limit_min for j in jobs] == [1, 1, 1, 1]  # whole minutes >= run + 10 s
    assert (
        prepare_slice(
            _trace(),
            start=1,
            count=1,
            scale=1,
            max_duration_s=100,
            gpus_per_node=4,
            nodes=2,
            cpus_per_gpu=4,
        )[0].time_limit_min
        == 1
    )
    sim = trace_of(jobs, overhead_s=0.5)
    assert sim[2].gpus_per_node == 4 and sim[2].walltime_s == 60.0
    assert sim[0].duration_s == 20.5


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"scale": 0}, "scale"),
        ({"count": 0}, "jobs"),
        ({"start": 10}, "skip"),
        ({"max_duration_s": 0}, "max_duration"),
    ],
)
def test_prepare_slice_refuses_bad_options(kw: dict[str, float], field: str) -> None:
    args: dict[str, float] = {"start": 0, "count": 2, "scale": 10, "max_duration_s": 5}
    args.update(kw)
    with pytest.raises(InvalidInput) as exc:
        prepare_slice(_trace(), gpus_per_node=4, nodes=2, cpus_per_gpu=4, **args)  # type: ignore[arg-type]
    assert exc.value.field == field


def _backfill_start(phase: float | None) -> float:
    # 3 of 4 GPUs busy until 100; the 4-GPU head waits; the 1-GPU job can only backfill
    trace = [
        TraceJob("big", 0.0, 100.0, 3, walltime_s=100.0),
        TraceJob("head", 1.0, 10.0, 4, walltime_s=10.0),
        TraceJob("small", 5.0, 10.0, 1, walltime_s=10.0),
    ]
    params = PolicyParams(bf_interval_s=30.0, bf_phase_s=phase, checkpoint_interval_s=None)
    res = run_simulation(trace, uniform_cluster(1, 4), "conservative-backfill", params=params)
    return next(o.first_start_time for o in res.outcomes if o.job_id == "small")


def test_backfill_on_slurms_timer() -> None:
    assert _backfill_start(None) == 31.0  # bf_interval after the pass at the head's arrival
    assert _backfill_start(0.0) == 30.0  # the timer's ticks: 0, 30, 60 ...
    assert _backfill_start(12.0) == 12.0  # ticks 12, 42 ...


def test_bad_phase_is_refused() -> None:
    with pytest.raises(InvalidInput, match="bf_phase_s"):
        PolicyParams(bf_phase_s=float("nan"))


def test_simulate_uses_the_conf_and_the_timing() -> None:
    conf = parse_slurm_conf(
        "SchedulerParameters=bf_interval=30\nPriorityType=priority/multifactor\n"
        "PriorityWeightJobSize=1000\nNodeName=n[1-2] CPUs=16 Gres=gpu:4\n"
    )
    jobs = prepare_slice(
        _trace(),
        start=0,
        count=4,
        scale=100,
        max_duration_s=20,
        gpus_per_node=4,
        nodes=2,
        cpus_per_gpu=4,
    )
    plain = simulate(jobs, conf)
    timed = simulate(jobs, conf, SlurmTiming(bf_phase_s=0.0, job_overhead_s=1.0))
    assert set(plain) == {"a", "b", "c", "d"}
    assert plain["a"].end - plain["a"].start == 20
    assert timed["a"].end - timed["a"].start == 21  # the overhead lengthens every job
    assert all(plain[k].start >= plain[k].submit for k in plain)


def _small_start(origin: float | None, small_walltime: float = 20.0) -> float:
    trace = [
        TraceJob("big", 0.0, 100.0, 3, walltime_s=100.0),
        TraceJob("head", 1.0, 10.0, 4, walltime_s=10.0),
        TraceJob("small", 5.0, small_walltime, 1, walltime_s=small_walltime),
    ]
    params = PolicyParams(
        bf_interval_s=30.0,
        bf_phase_s=0.0,
        checkpoint_interval_s=None,
        bf_resolution_s=None if origin is None else 60.0,
        bf_grid_origin_s=origin or 0.0,
    )
    res = run_simulation(trace, uniform_cluster(1, 4), "conservative-backfill", params=params)
    return next(o.first_start_time for o in res.outcomes if o.job_id == "small")


def test_bf_resolution_widens_reservations_on_the_grid() -> None:
    assert _small_start(None) == 30.0  # ends at 50, before the head's reservation at 100
    assert _small_start(0.0) == 30.0  # reservation widened to start at 60: still clear
    # grid at 45, 105 ...: the reservation now starts at 45 and the small job would
    # overlap it, so it waits for the head (100 .. 110), as Slurm's bf_resolution does
    assert _small_start(45.0) == 110.0
    with pytest.raises(InvalidInput, match="bf_resolution_s"):
        PolicyParams(bf_resolution_s=0.0)


def test_scheduling_timer_and_release_delay() -> None:
    trace = [
        TraceJob("a", 0.2, 2.0, 1, walltime_s=60.0),
        TraceJob("b", 0.2, 1.0, 1, walltime_s=60.0),
    ]
    cl = uniform_cluster(1, 1)
    res = run_simulation(trace, cl, "fifo", sched_period_s=1.0, sched_phase_s=0.5)
    got = {o.job_id: (o.first_start_time, o.end_time) for o in res.outcomes}
    assert got == {"a": (0.5, 2.5), "b": (2.5, 3.5)}  # cycles only on the ticks
    res = run_simulation(
        trace, cl, "fifo", sched_period_s=1.0, sched_phase_s=0.5, release_delay_s=0.1
    )
    got = {o.job_id: (o.first_start_time, o.end_time) for o in res.outcomes}
    assert got == {"a": (0.5, 2.5), "b": (3.5, 4.5)}  # a's GPU is free at 2.6: next tick
    assert run_simulation(trace, cl, "fifo").outcomes[1].first_start_time == 2.2
    with pytest.raises(InvalidInput, match="scheduling period"):
        run_simulation(trace, cl, "fifo", sched_period_s=0.0)
    with pytest.raises(InvalidInput, match="release delay"):
        run_simulation(trace, cl, "fifo", release_delay_s=-1.0)
