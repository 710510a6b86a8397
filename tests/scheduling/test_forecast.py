"""Start-time forecasts: the policy's scheduler run forward from a snapshot, every job
ending at its walltime limit. Checked by hand on small cases and, for the policies whose
decisions do not depend on accrued usage, against an independent replay that calls
``Policy.decide`` on a fresh snapshot at every event."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rechenwerk.scheduling.forecast import MAX_IDLE_WAKEUPS, forecast_starts
from rechenwerk.scheduling.model import Node, PendingJob, RunningJob, Snapshot
from rechenwerk.scheduling.policies import Policy, make_policy

NOW = 1_000_000.0


def _pending(jid: str, gpus: int, walltime: float, t: float = 0.0) -> PendingJob:
    return PendingJob(job_id=jid, gpus=gpus, walltime_s=walltime, submit_time=NOW - 100 + t)


def test_jobs_start_when_running_jobs_reach_their_walltime() -> None:
    running = (RunningJob("r", "default", 4, (("n1", (0, 1, 2, 3)),), NOW - 600, 3600.0),)
    pending = (_pending("a", 4, 3600.0), _pending("b", 2, 1800.0, 1),
               _pending("c", 64, 60.0, 2))
    snap = Snapshot(now=NOW, nodes=(Node("n1", 4),), running=running, pending=pending)
    f = forecast_starts(make_policy("fifo"), snap)
    assert f.start_of("a") == NOW + 3000  # when r's walltime ends
    assert f.start_of("b") == NOW + 3000 + 3600  # fifo: behind a
    assert f.start_of("c") is None  # larger than the centre: never
    easy = forecast_starts(make_policy("easy-backfill"), snap)
    assert easy.start_of("a") == NOW + 3000
    # b cannot backfill now (no free GPU) and not next to a (a takes all 4)
    assert easy.start_of("b") == NOW + 6600


def test_backfill_forecast_starts_a_short_job_now_and_an_overrun_frees_its_gpus() -> None:
    running = (RunningJob("r", "default", 2, (("n1", (0, 1)),), NOW - 9000, 3600.0),
               RunningJob("s", "default", 1, (("n1", (2,)),), NOW - 100, 1000.0))
    pending = (_pending("big", 4, 3600.0), _pending("small", 1, 500.0, 1))
    snap = Snapshot(now=NOW, nodes=(Node("n1", 4),), running=running, pending=pending)
    f = forecast_starts(make_policy("easy-backfill"), snap)
    # r overran its walltime: its GPUs are counted free now; big waits for s (900 s).
    assert f.start_of("big") == NOW + 900
    assert f.start_of("small") == NOW  # fits before big's reserved start
    assert f.cycles >= 2


def test_horizon_bounds_the_run() -> None:
    running = (RunningJob("r", "default", 4, (("n1", (0, 1, 2, 3)),), NOW, 7200.0),)
    snap = Snapshot(now=NOW, nodes=(Node("n1", 4),), running=running,
                    pending=(_pending("a", 4, 60.0),))
    assert forecast_starts(make_policy("fifo"), snap, horizon_s=3600).start_of("a") is None
    assert forecast_starts(make_policy("fifo"), snap, horizon_s=7200).start_of("a") == NOW + 7200


def _replay(policy: Policy, snap: Snapshot) -> dict[str, float]:
    """An independent forecast: ``decide`` on a fresh snapshot at every event."""
    running = {rj.job_id: rj for rj in snap.running}
    pending = {j.job_id: j for j in snap.pending}
    t, starts, idle = snap.now, {}, 0
    while pending:
        for jid in [j for j, rj in running.items() if max(rj.expected_end, snap.now) <= t]:
            del running[jid]
            idle = 0
        d = policy.decide(Snapshot(now=t, nodes=snap.nodes, running=tuple(running.values()),
                                   pending=tuple(pending.values()), projects=snap.projects))
        for s in d.starts:
            job = pending.pop(s.job_id)
            starts[s.job_id] = t
            running[s.job_id] = RunningJob(job.job_id, job.project, job.gpus, s.placement, t,
                                           job.walltime_s, job.qos, job.submit_time)
        ends = [max(rj.expected_end, snap.now) for rj in running.values()]
        later = [e for e in ends if e > t]
        nxt = min(later, default=math.inf)
        idle = 0 if d.starts else idle + 1
        # the same rule for the policy's wake-ups as the forecast's (MAX_IDLE_WAKEUPS)
        if d.wake_at is not None and t < d.wake_at < nxt and idle < MAX_IDLE_WAKEUPS:
            nxt = d.wake_at
        if math.isinf(nxt):
            break
        t = nxt
    return starts


@st.composite
def _snapshots(draw: st.DrawFn) -> Snapshot:
    sizes = draw(st.lists(st.sampled_from([2, 4, 8]), min_size=1, max_size=3))
    nodes = tuple(Node(f"n{i}", g) for i, g in enumerate(sizes))
    running = []
    for i, node in enumerate(nodes):
        used = draw(st.integers(0, node.gpus))
        if used:
            end = draw(st.integers(-600, 7200))
            running.append(RunningJob(f"r{i}", "default", used,
                                      ((node.name, tuple(range(used))),),
                                      NOW - 3600, 3600.0 + end))
    pending = tuple(
        _pending(f"p{k}", draw(st.integers(1, max(sizes) * 2)),
                 float(draw(st.sampled_from([300, 900, 3600, 7200]))), k)
        for k in range(draw(st.integers(1, 10)))
    )
    return Snapshot(now=NOW, nodes=nodes, running=tuple(running), pending=pending)


@settings(max_examples=150, deadline=None)
@given(_snapshots(), st.sampled_from(["fifo", "easy-backfill", "conservative-backfill"]))
def test_forecast_equals_a_replay_of_fresh_decisions(snap: Snapshot, name: str) -> None:
    policy = make_policy(name)
    f = forecast_starts(policy, snap)
    assert dict(f.starts) == _replay(policy, snap)
    assert all(s >= NOW for s in f.starts.values())


def test_multifactor_forecast_orders_by_priority() -> None:
    running = (RunningJob("r", "heavy", 4, (("n1", (0, 1, 2, 3)),), NOW, 600.0),)
    from rechenwerk.scheduling.model import ProjectInfo

    projects = {"heavy": ProjectInfo(share=1.0, usage_gpu_s=5e6),
                "light": ProjectInfo(share=1.0, usage_gpu_s=0.0)}
    pending = (PendingJob("h", "heavy", 4, walltime_s=600.0, submit_time=NOW - 50),
               PendingJob("l", "light", 4, walltime_s=600.0, submit_time=NOW - 10))
    snap = Snapshot(now=NOW, nodes=(Node("n1", 4),), running=running, pending=pending,
                    projects=projects)
    f = forecast_starts(make_policy("multifactor+easy-backfill"), snap)
    assert f.start_of("l") == NOW + 600 and f.start_of("h") == NOW + 1200


def test_run_fraction_shortens_the_expected_runs_but_not_the_plan() -> None:
    running = (RunningJob("r", "p", 4, (("n1", (0, 1, 2, 3)),), NOW - 100, 3600.0),
               RunningJob("q", "other", 4, (("n2", (0, 1, 2, 3)),), NOW - 100, 3600.0))
    pending = (PendingJob("a", "p", 8, walltime_s=600.0, submit_time=NOW - 10),)
    snap = Snapshot(now=NOW, nodes=(Node("n1", 4), Node("n2", 4)), running=running,
                    pending=pending)
    fifo = make_policy("fifo")
    # a needs both nodes: it waits for the later end, other's walltime (no history)
    assert forecast_starts(fifo, snap, run_fraction={"p": 0.5}).start_of("a") == NOW + 3500
    both = forecast_starts(fifo, snap, run_fraction={"p": 0.5, "other": 0.25})
    assert both.start_of("a") == NOW + 1700  # p's job ends at 1800 s of its 3600 s
    # a job already past its expected share is expected to end at once
    assert forecast_starts(fifo, snap, run_fraction={"p": 0.01, "other": 0.01}
                           ).start_of("a") == NOW
