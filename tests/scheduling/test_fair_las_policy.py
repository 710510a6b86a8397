"""fair-las: LAS inside a dynamic fair share, preemption only as designed, no starvation."""

from __future__ import annotations

import random

import pytest
from sched_builders import cluster

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling import PendingJob, PolicyParams, make_policy
from rechenwerk.scheduling.cycle import CycleResult, Scheduler
from rechenwerk.scheduling.policies import policy_names
from rechenwerk.scheduling.policies.fair_las import FairLasScheduler, water_fill

TH = (1000.0, 10000.0)


def _sched(n_nodes: int = 1, **kw: object) -> FairLasScheduler:
    params = PolicyParams(las_thresholds_gpu_s=TH, **kw)  # type: ignore[arg-type]
    s = make_policy("fair-las", params).scheduler(cluster(n_nodes), {}, 0.0)
    assert isinstance(s, FairLasScheduler)
    return s


def _requeue(s: Scheduler, res: CycleResult, now: float) -> None:
    """What the simulator does with a preempted job: queue it again with its service."""
    for rj, _why in res.preempted:
        s.submit(PendingJob(rj.job_id, project=rj.project, gpus=rj.gpus,
                            submit_time=rj.submit_time,
                            attained_gpu_s=rj.attained_gpu_s + (now - rj.start_time) * rj.gpus))


def test_registered_and_params_checked() -> None:
    assert "fair-las" in policy_names()
    assert make_policy("fair_las").name == "fair-las"
    with pytest.raises(InvalidInput, match="fairlas_min_run_s"):
        PolicyParams(fairlas_min_run_s=-1)
    with pytest.raises(InvalidInput, match="fairlas_starve_s"):
        PolicyParams(fairlas_starve_s=float("inf"))


def test_water_fill_is_weighted_max_min() -> None:
    assert water_fill({"a": 2, "b": 100, "c": 100}, {}, 10) == pytest.approx(
        {"a": 2, "b": 4, "c": 4})
    assert water_fill({"a": 100, "b": 100}, {"a": 3, "b": 1}, 8) == pytest.approx(
        {"a": 6, "b": 2})
    assert water_fill({"a": 1, "b": 0}, {}, 8) == pytest.approx({"a": 1, "b": 0})


def test_less_attained_service_preempts_a_longer_served_job() -> None:
    s = _sched()
    s.submit(PendingJob("long", gpus=8))
    assert [j.job_id for j, _ in s.schedule(0.0).starts] == ["long"]
    # 900 s x 8 GPUs = 7200 GPU-s: level 1; a new job (level 0) of the same project
    s.submit(PendingJob("short", gpus=8, submit_time=900.0))
    res = s.schedule(900.0)
    assert [rj.job_id for rj, _ in res.preempted] == ["long"]
    assert [j.job_id for j, _ in res.starts] == ["short"]


def test_no_preemption_before_the_minimum_run_nor_within_a_level() -> None:
    s = _sched(fairlas_min_run_s=600.0)
    s.submit(PendingJob("a", gpus=8))
    s.schedule(0.0)
    # at 100 s "a" is at level 0 already crossed? 800 GPU-s < 1000: same level: no
    s.submit(PendingJob("b", gpus=8, submit_time=100.0))
    assert not s.schedule(100.0).preempted
    # a crosses level 1 at 125 s, but it has run less than the 600 s minimum until 600 s
    assert not s.schedule(300.0).preempted
    res = s.schedule(600.0)
    assert [rj.job_id for rj, _ in res.preempted] == ["a"]


def test_wakes_up_when_a_running_job_changes_level() -> None:
    s = _sched(fairlas_min_run_s=0.0)
    s.submit(PendingJob("a", gpus=8))
    s.schedule(0.0)
    s.submit(PendingJob("b", gpus=8, submit_time=10.0))
    res = s.schedule(10.0)
    assert not res.preempted and res.wake_at == pytest.approx(125.0)  # 1000 / 8 GPUs


def test_fair_share_orders_projects_under_their_share_first() -> None:
    """Two projects, one node: "big" holds 6 GPUs, "small" none; at equal level the job
    of the project further below its share starts first even though it came later."""
    s = _sched()
    for k in range(6):
        s.submit(PendingJob(f"b{k}", project="big", gpus=1))
    s.schedule(0.0)
    s.submit(PendingJob("big-late", project="big", gpus=2, submit_time=1.0))
    s.submit(PendingJob("small-late", project="small", gpus=2, submit_time=2.0))
    order = [j.job_id for j in s.queue_order(3.0)]
    assert order == ["small-late", "big-late"]
    assert [j.job_id for j, _ in s.schedule(3.0).starts] == ["small-late"]


def test_victims_come_from_the_project_furthest_over_its_share() -> None:
    """Same level everywhere: "a" holds 6 GPUs, "b" 2 (both want more); a new job of "c"
    preempts one of "a"'s jobs, not "b"'s."""
    s = _sched(fairlas_min_run_s=0.0)
    for k in range(6):
        s.submit(PendingJob(f"a{k}", project="a", gpus=1))
    for k in range(2):
        s.submit(PendingJob(f"b{k}", project="b", gpus=1))
    s.schedule(0.0)
    s.submit(PendingJob("a-more", project="a", gpus=1, submit_time=1.0))
    s.submit(PendingJob("b-more", project="b", gpus=1, submit_time=1.0))
    s.schedule(1.0)
    s.submit(PendingJob("cnew", project="c", gpus=1, submit_time=5000.0))
    res = s.schedule(5000.0)
    assert [rj.project for rj, _ in res.preempted][:1] == ["a"]
    assert "cnew" in [j.job_id for j, _ in res.starts]


def test_victims_lose_the_least_work() -> None:
    """Two long-served victims of the same level: the one just past a checkpoint goes."""
    s = _sched(n_nodes=2, fairlas_min_run_s=0.0, checkpoint_interval_s=3600.0)
    s.submit(PendingJob("old", gpus=8))
    s.schedule(0.0)
    s.submit(PendingJob("young", gpus=8, submit_time=1800.0))
    s.schedule(1800.0)
    # at 3700 s: "old" ran 3700 s (100 s since its checkpoint), "young" 1900 s
    s.submit(PendingJob("new", gpus=8, submit_time=3700.0))
    res = s.schedule(3700.0)
    assert [rj.job_id for rj, _ in res.preempted] == ["old"]


def test_history_free_no_walltime_is_read() -> None:
    """Run-time awareness comes only from attained service: the same jobs with walltime
    estimates that lie give the same decisions."""
    def starts(walls: list[float]) -> list[str]:
        s = _sched()
        for k, w in enumerate(walls):
            s.submit(PendingJob(f"j{k}", gpus=4, walltime_s=w, submit_time=float(k)))
        return [j.job_id for j, _ in s.schedule(10.0).starts]

    assert starts([10.0, 1e9, 5.0]) == starts([1e9, 1.0, 1e6]) == ["j0", "j1"]


def test_overdue_job_drains_the_cluster_and_starts() -> None:
    """A 16-GPU job among a stream of 1-GPU jobs on two nodes: without the guard it
    would wait behind the stream forever (new level-0 jobs keep the GPUs busy); once
    overdue, nothing else starts on the GPUs it needs and it starts."""
    s = _sched(n_nodes=2, fairlas_starve_s=3600.0)
    rng = random.Random(1)
    started_big = None
    t = 0.0
    k = 0
    running_end: dict[str, float] = {}
    while t < 20 * 3600.0 and started_big is None:
        for jid, end in list(running_end.items()):
            if end <= t:
                s.finish(jid, t)
                del running_end[jid]
        for _ in range(6):
            s.submit(PendingJob(f"s{k}", project="q", gpus=1, submit_time=t))
            k += 1
        if t == 300.0:
            s.submit(PendingJob("big", project="p", gpus=16, submit_time=t))
        res = s.schedule(t)
        _requeue(s, res, t)
        for rj, _ in res.preempted:
            running_end.pop(rj.job_id, None)
        for job, _rj in res.starts:
            if job.job_id == "big":
                started_big = t
            else:
                running_end[job.job_id] = t + rng.uniform(600.0, 1800.0)
        t += 300.0
    assert started_big is not None and started_big <= 300.0 + 3600.0 + 1800.0 + 300.0
    assert started_big >= 300.0 + 3600.0 and "big" in s.guarded  # it waited to be overdue


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_replays_keep_the_invariants_and_finish(seed: int) -> None:
    """Random mixed workloads through the simulator with its strict checks (no GPU used
    twice, gang starts, the scheduler's free GPUs equal the engine's): every job ends,
    preempted work is counted, and no job waits much beyond the starvation guard."""
    from rechenwerk.simulation.cluster import uniform_cluster
    from rechenwerk.simulation.engine import run_simulation
    from rechenwerk.simulation.traces.base import TraceJob

    rng = random.Random(seed)
    jobs = [TraceJob(f"j{k}", submit_time=k * rng.uniform(20.0, 200.0),
                     duration_s=rng.choice([60.0, 600.0, 3600.0, 36000.0]),
                     gpus=rng.choice([1, 1, 1, 2, 4, 8, 16]),
                     project=rng.choice(["a", "b", "c"])) for k in range(300)]
    params = PolicyParams(fairlas_starve_s=6 * 3600.0)
    r = run_simulation(jobs, uniform_cluster(4, 8), "fair-las", params=params, strict=True)
    assert len(r.outcomes) == len(jobs)
    assert r.metrics.preemptions == sum(o.preemptions for o in r.outcomes)
    assert all(o.first_start_time - o.submit_time <= 6 * 3600.0 + 40 * 3600.0
               for o in r.outcomes)
