"""LAS starvation guard (Tiresias' STARVELIMIT), driven through the incremental API."""

from __future__ import annotations

import pytest
from sched_builders import cluster

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling import PendingJob, PolicyParams, make_policy


def _replay(starve_limit: float | None) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """One 8-GPU node. ``long`` runs 200 s (1600 GPU-s: queue 1), is preempted by a
    queue-0 job, and from then on a new 100 s queue-0 job arrives whenever one ends.
    ``long`` is finished at the first arrival time >= 800 at which it runs. Returns
    starts and preemptions as (time, job)."""
    params = PolicyParams(las_thresholds_gpu_s=(1000.0, 10000.0), las_starve_limit=starve_limit)
    s = make_policy("las", params).scheduler(cluster(1), {}, 0.0)
    starts: list[tuple[float, str]] = []
    preempted: list[tuple[float, str]] = []

    def cycle(now: float) -> None:
        res = s.schedule(now)
        for rj, _why in res.preempted:
            preempted.append((now, rj.job_id))
            s.submit(
                PendingJob(
                    rj.job_id,
                    gpus=rj.gpus,
                    submit_time=rj.submit_time,
                    attained_gpu_s=rj.attained_gpu_s + (now - rj.start_time) * rj.gpus,
                )
            )
        for job, _rj in res.starts:
            starts.append((now, job.job_id))

    s.submit(PendingJob("long", gpus=8, submit_time=0.0))
    cycle(0.0)
    t = 200.0
    s.submit(PendingJob("s0", gpus=8, submit_time=t))
    cycle(t)
    assert preempted == [(200.0, "long")]
    for k in range(1, 12):
        t += 100.0
        for jid in list(s.running):
            if jid.startswith("s") and s.running[jid].start_time + 100.0 <= t:
                s.finish(jid, t)
        if "long" in s.running and t >= 800.0:
            s.finish("long", t)
        s.submit(PendingJob(f"s{k}", gpus=8, submit_time=t))
        cycle(t)
    return starts, preempted


def test_las_without_guard_starves_the_long_job() -> None:
    starts, preempted = _replay(None)
    assert preempted == [(200.0, "long")]
    # after its preemption it never runs again: a queue-0 arrival always goes first
    assert [t for t, j in starts if j == "long"] == [0.0]
    assert [t for t, j in starts if j != "long"] == [200.0 + 100.0 * k for k in range(12)]


def test_las_guard_promotes_after_limit_times_last_run() -> None:
    starts, preempted = _replay(2.0)
    # preempted at t=200 after a 200 s run: promoted at 200 + 2 x 200 = 600; as the
    # oldest job of queue 0 it restarts when the short job running then ends (t=600),
    # and the queue-0 arrivals meanwhile do not preempt it during its quantum
    assert preempted == [(200.0, "long")]
    assert [t for t, j in starts if j == "long"] == [0.0, 600.0]
    assert (800.0, "s4") in starts  # the next short job waits until long ends at 800


def test_las_promoted_job_keeps_queue_0_for_one_quantum() -> None:
    params = PolicyParams(las_thresholds_gpu_s=(1000.0, 10000.0), las_starve_limit=1.0)
    s = make_policy("las", params).scheduler(cluster(1), {}, 0.0)
    s.submit(PendingJob("long", gpus=8, submit_time=0.0))
    s.schedule(0.0)
    s.submit(PendingJob("a", gpus=8, submit_time=200.0))
    res = s.schedule(200.0)  # long (1600 GPU-s, queue 1) is preempted by a
    assert [rj.job_id for rj, _ in res.preempted] == ["long"]
    s.submit(PendingJob("long", gpus=8, submit_time=0.0, attained_gpu_s=1600.0))
    s.finish("a", 400.0)  # promotion due at 200 + 1 x 200 = 400
    res = s.schedule(400.0)
    assert [j.job_id for j, _ in res.starts] == ["long"]
    # a new queue-0 job cannot preempt it during its quantum (1000 GPU-s / 8 = 125 s)
    s.submit(PendingJob("b", gpus=8, submit_time=450.0))
    res = s.schedule(450.0)
    assert res.preempted == [] and res.starts == []
    assert res.wake_at == pytest.approx(525.0)
    # after the quantum it is demoted by its attained service and b preempts it
    res = s.schedule(525.0)
    assert [rj.job_id for rj, _ in res.preempted] == ["long"]
    assert [j.job_id for j, _ in res.starts] == ["b"]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_las_starve_limit_is_validated(bad: float) -> None:
    with pytest.raises(InvalidInput, match="las_starve_limit"):
        PolicyParams(las_starve_limit=bad)
