"""Property tests over random small workloads: invariants hold for every policy."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_builders import cluster, gpus_of

from rechenwerk.scheduling import (
    PendingJob,
    PolicyParams,
    RunningJob,
    Snapshot,
    make_policy,
    policy_names,
)
from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.traces import TraceJob

GPUS = st.sampled_from([1, 1, 1, 2, 4, 8, 12, 16])

trace_jobs = st.lists(
    st.tuples(
        st.integers(0, 2000),  # submit
        st.integers(1, 3000),  # duration
        GPUS,
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([1.0, 1.5, 3.0]),  # walltime factor per job
    ),
    min_size=1,
    max_size=40,
)

SMALL = PolicyParams(
    bf_interval_s=0.0,
    las_thresholds_gpu_s=(500.0, 5000.0),
    checkpoint_interval_s=300.0,
    priority_calc_period_s=60.0,
)


@pytest.mark.parametrize("policy", policy_names())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=trace_jobs)
def test_replay_invariants(policy: str, rows: list[tuple[int, int, int, str, float]]) -> None:
    jobs = sorted(
        (
            TraceJob(f"j{i}", float(s), float(d), g, p, walltime_s=d * f)
            for i, (s, d, g, p, f) in enumerate(rows)
        ),
        key=lambda j: j.submit_time,
    )
    # strict=True: after every cycle the scheduler's free GPUs must equal the engine's
    # own bookkeeping; every start is checked for double-booked GPUs, gang, submit time
    r = run_simulation(jobs, load_cluster("3x8"), policy, params=SMALL, strict=True)
    assert len(r.outcomes) == len(jobs)
    useful = {j.job_id: j.duration_s for j in jobs}
    for o in r.outcomes:
        assert o.first_start_time >= o.submit_time
        assert o.end_time - o.first_start_time >= useful[o.job_id] - 1e-6
        assert o.lost_gpu_s >= 0
    assert all(0 <= b <= 24 for b in r.timeline.busy_gpus)
    assert list(r.timeline.times) == sorted(r.timeline.times)
    if policy in (
        "fifo",
        "easy-backfill",
        "conservative-backfill",
        "multifactor",
        "multifactor+easy-backfill",
        "multifactor+conservative-backfill",
    ):
        assert r.preemptions == 0


snapshots = st.tuples(
    st.lists(st.tuples(GPUS, st.integers(0, 500)), max_size=6),  # running: gpus, elapsed
    st.lists(
        st.tuples(GPUS, st.sampled_from(["a", "b"]), st.integers(10, 5000)), min_size=1, max_size=15
    ),
)


@pytest.mark.parametrize("policy", policy_names())
@settings(max_examples=30, deadline=None)
@given(data=snapshots)
def test_decide_invariants(policy: str, data: tuple[list, list]) -> None:  # type: ignore[type-arg]
    nodes = cluster(4, per_block=2)
    now = 1000.0
    # place the running jobs with the core itself (fifo on an empty cluster)
    run_specs, pend_specs = data
    placed = make_policy("fifo").decide(
        Snapshot(
            0.0,
            nodes,
            (),
            tuple(
                PendingJob(f"r{i}", "a", g, submit_time=0.0) for i, (g, _) in enumerate(run_specs)
            ),
        )
    )
    running = tuple(
        RunningJob(
            s.job_id,
            "a" if i % 2 else "b",
            sum(len(g) for _, g in s.placement),
            s.placement,
            now - run_specs[i][1],
            600.0,
        )
        for i, s in enumerate(placed.starts)
    )
    pending = tuple(
        PendingJob(f"p{i}", p, g, walltime_s=float(w), submit_time=float(i))
        for i, (g, p, w) in enumerate(pend_specs)
    )
    d = make_policy(policy, SMALL).decide(Snapshot(now, nodes, running, pending))
    started = {s.job_id for s in d.starts}
    preempted = {p.job_id for p in d.preemptions}
    assert preempted <= {r.job_id for r in running}
    # every pending job starts or has a reason
    assert started | set(d.waiting) == {p.job_id for p in pending}
    assert not started & set(d.waiting)
    # no GPU is used twice by survivors and new starts; gang: exact GPU count
    busy: set[tuple[str, int]] = set()
    for r in running:
        if r.job_id not in preempted:
            busy |= gpus_of(r.placement)
    size = {p.job_id: p.gpus for p in pending}
    for s in d.starts:
        g = gpus_of(s.placement)
        assert len(g) == size[s.job_id]
        assert not g & busy
        busy |= g
    assert all(0 <= i < 8 for _, i in busy)
