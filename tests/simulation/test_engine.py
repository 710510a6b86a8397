"""The discrete-event engine: replay rules, preemption/requeue, failures, invariants."""

from __future__ import annotations

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling import PolicyParams
from rechenwerk.simulation.cluster import load_cluster, uniform_cluster
from rechenwerk.simulation.engine import FailureModel, run_simulation, walltime_note
from rechenwerk.simulation.traces import TraceJob


def tj(
    jid: str, submit: float, dur: float, gpus: int = 1, project: str = "default", **kw: object
) -> TraceJob:
    return TraceJob(jid, submit, dur, gpus, project, **kw)  # type: ignore[arg-type]


def by_id(result):  # type: ignore[no-untyped-def]
    return {o.job_id: o for o in result.outcomes}


def test_fifo_replay_on_one_node() -> None:
    jobs = [tj("a", 0, 100, 8), tj("b", 10, 50, 4), tj("c", 20, 10, 4)]
    r = run_simulation(jobs, uniform_cluster(1, 8), "fifo", strict=True)
    o = by_id(r)
    assert (o["a"].first_start_time, o["a"].end_time) == (0, 100)
    assert (o["b"].first_start_time, o["c"].first_start_time) == (100, 100)
    assert o["b"].end_time == 150 and o["c"].end_time == 110
    assert r.metrics.jobs == 3 and r.metrics.makespan_s == 150
    # timeline: a step function sampled at each change, ends idle and empty
    assert r.timeline.times[0] == 0 and r.timeline.busy_gpus[-1] == 0
    assert max(r.timeline.busy_gpus) <= 8 and r.timeline.queue_len[-1] == 0


def test_backfill_starts_a_short_job_without_delaying_the_head() -> None:
    jobs = [tj("r", 0, 100, 6), tj("head", 1, 100, 8), tj("short", 2, 50, 2), tj("long", 3, 500, 2)]
    fifo = by_id(run_simulation(jobs, uniform_cluster(1, 8), "fifo", strict=True))
    easy = by_id(
        run_simulation(
            jobs,
            uniform_cluster(1, 8),
            "easy-backfill",
            strict=True,
            params=PolicyParams(bf_interval_s=0),
        )
    )
    assert easy["short"].first_start_time == 2 < fifo["short"].first_start_time
    assert easy["head"].first_start_time == fifo["head"].first_start_time == 100
    assert easy["long"].first_start_time >= 200  # after the head: it would have delayed it


def test_walltime_factor_is_validated_and_stated() -> None:
    jobs = [tj("a", 0, 100)]
    with pytest.raises(InvalidInput) as exc:
        run_simulation(jobs, uniform_cluster(1, 8), "fifo", walltime_factor=0.5)
    assert exc.value.field == "walltime_factor"
    r = run_simulation(jobs, uniform_cluster(1, 8), "fifo", walltime_factor=2.0)
    assert r.walltime_note == walltime_note(2.0) and "2 x run time" in r.walltime_note


def test_trace_walltime_shorter_than_run_kills_the_job_at_walltime() -> None:
    r = run_simulation([tj("a", 0, 100, walltime_s=60.0)], uniform_cluster(1, 8), "fifo")
    assert by_id(r)["a"].end_time == 60


def test_oversized_job_is_an_error_or_dropped() -> None:
    jobs = [tj("a", 0, 10, 1), tj("huge", 0, 10, 64)]
    with pytest.raises(InvalidInput, match="huge requests 64 GPUs"):
        run_simulation(jobs, uniform_cluster(2, 8), "fifo")
    r = run_simulation(jobs, uniform_cluster(2, 8), "fifo", drop_oversized=True)
    assert r.dropped == ["huge"] and r.metrics.jobs == 1


def test_quota_reclaim_requeues_borrower_and_loses_work_since_checkpoint() -> None:
    # a borrows the whole node; b (guarantee 4) arrives and reclaims by preemption
    jobs = [tj("a1", 0, 1000, 4, "a"), tj("a2", 0, 1000, 4, "a"), tj("b1", 250, 100, 4, "b")]
    params = PolicyParams(guarantees={"a": 4, "b": 4}, checkpoint_interval_s=100.0)
    r = run_simulation(jobs, uniform_cluster(1, 8), "quota", params=params, strict=True)
    o = by_id(r)
    assert o["b1"].first_start_time == 250
    victim = o["a2"] if o["a2"].preemptions else o["a1"]
    assert victim.preemptions == 1
    assert victim.lost_gpu_s == pytest.approx(50 * 4)  # ran 250 s, checkpoint at 200
    assert victim.end_time == pytest.approx(350 + 800)  # restarts at 350, 800 s left
    assert r.preemptions == 1


def test_no_checkpoint_loses_everything() -> None:
    jobs = [tj("a1", 0, 1000, 4, "a"), tj("a2", 0, 1000, 4, "a"), tj("b1", 250, 100, 4, "b")]
    params = PolicyParams(guarantees={"a": 4, "b": 4}, checkpoint_interval_s=None)
    r = run_simulation(jobs, uniform_cluster(1, 8), "quota", params=params, strict=True)
    victim = next(o for o in r.outcomes if o.preemptions)
    assert victim.lost_gpu_s == pytest.approx(250 * 4)
    assert victim.end_time == pytest.approx(350 + 1000)


def test_las_demotes_a_long_job_and_lets_a_short_one_through() -> None:
    params = PolicyParams(las_thresholds_gpu_s=(800.0,), checkpoint_interval_s=10.0)
    jobs = [tj("long", 0, 1000, 8), tj("short", 200, 50, 8)]
    r = run_simulation(jobs, uniform_cluster(1, 8), "las", params=params, strict=True)
    o = by_id(r)
    # long crossed 800 GPU-s at t=100 (demoted), so short preempts it at t=200
    assert o["short"].first_start_time == 200 and o["short"].end_time == 250
    assert o["long"].preemptions == 1 and o["long"].end_time == pytest.approx(1050)


def test_node_failures_requeue_jobs_and_everything_still_finishes() -> None:
    jobs = [tj(f"j{i}", i * 50.0, 3000.0, 1 + i % 8) for i in range(60)]
    r = run_simulation(
        jobs,
        load_cluster("4x8"),
        "easy-backfill",
        seed=3,
        strict=True,
        failures=FailureModel(mtbf_node_s=20_000.0, repair_s=2_000.0),
    )
    assert r.metrics.jobs == 60 and r.node_failures > 0
    again = run_simulation(
        jobs,
        load_cluster("4x8"),
        "easy-backfill",
        seed=3,
        failures=FailureModel(mtbf_node_s=20_000.0, repair_s=2_000.0),
    )
    assert [o.end_time for o in again.outcomes] == [o.end_time for o in r.outcomes]


def test_result_json_has_the_published_keys() -> None:
    r = run_simulation([tj("a", 0, 10)], uniform_cluster(1, 8), "fifo")
    d = r.to_dict()
    for key in (
        "jobs",
        "avg_jct_s",
        "p50_wait_s",
        "p95_wait_s",
        "utilization",
        "jain_fairness",
        "makespan_s",
        "wall_seconds",
        "jobs_per_second",
    ):
        assert key in d, key


def test_load_cluster_shorthand_and_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = load_cluster("3x4:H100")
    assert [n.name for n in c.nodes] == ["node1", "node2", "node3"]
    assert c.total_gpus == 12 and {n.gpu_type for n in c.nodes} == {"H100"}
    f = tmp_path / "c.yaml"
    f.write_text(
        "groups:\n  - {count: 4, gpus: 8, gpu_type: H100, nodes_per_block: 2}\n"
        "nodes:\n  - {name: fat1, gpus: 4, gpu_type: H200, block: fat}\n"
    )
    c = load_cluster(str(f))
    assert len(c.nodes) == 5 and len({n.block for n in c.nodes}) == 3
    for bad, msg in [
        ("0x8", "at least 1"),
        ("nonsense", "neither"),
        (str(f) + ".missing", "neither"),
    ]:
        with pytest.raises(InvalidInput, match=msg):
            load_cluster(bad)
    f.write_text("groups:\n  - {count: two, gpus: 8}\n")
    with pytest.raises(InvalidInput, match=r"groups\[0\]: 'count'"):
        load_cluster(str(f))
