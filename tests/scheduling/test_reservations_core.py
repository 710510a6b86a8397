"""Advance reservations in the pure core: placement, backfill, reasons, and the property
that no job runs on reserved GPUs during a window it is not part of."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_builders import cluster, job

from rechenwerk.scheduling import (
    PendingJob,
    PolicyParams,
    Reservation,
    RunningJob,
    Snapshot,
    make_policy,
    policy_names,
)
from rechenwerk.scheduling.reservations import ReservationError, resolve_gpus

NODES = cluster(2, 4)  # node1, node2 with 4 GPUs each


def maint(name: str, start: float, end: float, *nodes: str) -> Reservation:
    return Reservation(name, start, end, tuple((n, 4) for n in nodes), maintenance=True)


def decide(policy: str, now: float, pending: list[PendingJob], resv: list[Reservation],
           running: tuple[RunningJob, ...] = ()) -> tuple[dict[str, object], dict[str, str]]:
    snap = Snapshot(now, NODES, running, tuple(pending), {}, tuple(resv))
    d = make_policy(policy).decide(snap)
    return ({s.job_id: s.placement for s in d.starts},
            {k: f"{w.code}: {w.message}" for k, w in d.waiting.items()})


@pytest.mark.parametrize("policy", policy_names())
def test_job_crossing_maintenance_start_does_not_start_there(policy: str) -> None:
    resv = [maint("m1", 3600.0, 7200.0, "node1")]
    long = job("1").gpus(4).walltime(4000).build()  # would cross 3600 on node1
    starts, waiting = decide(policy, 0.0, [long], resv)
    assert starts["1"] == (("node2", (0, 1, 2, 3)),)  # goes where nothing is reserved
    both = [job("2").gpus(4).walltime(4000).build(), job("3").gpus(4).walltime(4000).build()]
    starts, waiting = decide(policy, 0.0, both, resv)
    assert list(starts) == ["2"] and starts["2"][0][0] == "node2"
    assert waiting["3"].startswith("reservation: reserved for maintenance 'm1'")
    assert "walltime would run into it" in waiting["3"]


@pytest.mark.parametrize("policy", policy_names())
def test_short_job_runs_before_the_window(policy: str) -> None:
    resv = [maint("m1", 3600.0, 7200.0, "node1", "node2")]
    starts, _ = decide(policy, 0.0, [job("1").gpus(8).walltime(3600).build(),
                                           job("2").gpus(1).walltime(3601).build()], resv)
    assert "1" in starts and "2" not in starts


@pytest.mark.parametrize("policy", policy_names())
def test_reservation_jobs_run_inside_only(policy: str) -> None:
    r = Reservation("hero", 100.0, 5000.0, (("node1", 4),), frozenset({"p"}))
    inside = replace(job("1").gpus(4).walltime(1000).project("p").build(), reservation="hero")
    # before the window: waits, and blocks nobody behind it
    starts, waiting = decide(policy, 0.0, [inside, job("2").gpus(4).walltime(50).build()], [r])
    assert "1" not in starts and "2" in starts
    assert "waiting for reservation 'hero' to start" in waiting["1"]
    starts, _ = decide(policy, 100.0, [inside], [r])
    assert starts["1"] == (("node1", (0, 1, 2, 3)),)
    # a project that is not the reservation's, or a walltime past its end: never
    other = replace(inside, project="q")
    too_long = replace(inside, job_id="2", walltime_s=6000.0)
    starts, waiting = decide(policy, 100.0, [other, too_long], [r])
    assert not starts
    assert "not open to project q" in waiting["1"]
    assert "run past the end of reservation" in waiting["2"]
    # an outsider fits on node2 only, even though node1 is free
    outsider = job("9").gpus(4).walltime(10).build()
    starts, _ = decide(policy, 200.0, [outsider], [r])
    assert starts["9"][0][0] == "node2"


def test_easy_backfill_shadow_waits_for_the_end_of_maintenance() -> None:
    # node2 busy until 10000; node1 in maintenance 0..5000: the 8-GPU head's shadow
    # time is 10000, so a 4-GPU job of 2000 s backfills on... nothing (node1 reserved)
    resv = [maint("m1", 0.0, 5000.0, "node1")]
    busy = job("r").gpus(4).walltime(10000).running(0.0, ("node2", range(4)))
    head = job("h").gpus(8).walltime(100).submit(1).build()
    small = job("s").gpus(4).walltime(2000).submit(2).build()
    after = job("a").gpus(4).walltime(3000).submit(3).build()
    snap = Snapshot(10.0, NODES, (busy,), (head, small, after), {}, tuple(resv))
    d = make_policy("easy-backfill").decide(snap)
    assert not d.starts
    assert "reserved for maintenance 'm1' until" in d.waiting["s"].message
    # at 5000 the window has ended: a job that ends before the head's shadow (10000) fits
    snap = replace(snap, now=5000.0)
    d = make_policy("easy-backfill").decide(snap)
    assert [s.job_id for s in d.starts] == ["s"]


def test_resolve_gpus_counts_and_errors() -> None:
    nodes = cluster(3, 4, gpu_type="a100")
    assert resolve_gpus(nodes, (), 0, 10, count=6) == (("node1", 4), ("node2", 2))
    r1 = Reservation("x", 0, 10, (("node1", 4), ("node2", 2)), frozenset({"p"}))
    assert resolve_gpus(nodes, [r1], 5, 20, count=6) == (("node2", 2), ("node3", 4))
    assert resolve_gpus(nodes, [r1], 10, 20, count=12)  # touching windows do not overlap
    with pytest.raises(ReservationError, match="only 6 are not reserved"):
        resolve_gpus(nodes, [r1], 5, 20, count=7)
    with pytest.raises(ReservationError, match="already reserved"):
        resolve_gpus(nodes, [r1], 5, 20, node_names=["node2"])
    with pytest.raises(ReservationError, match="unknown node"):
        resolve_gpus(nodes, (), 0, 10, node_names=["nodeX"])
    with pytest.raises(ReservationError, match="GPU type 'h100'"):
        resolve_gpus(nodes, (), 0, 10, count=1, gpu_type="h100")
    with pytest.raises(ReservationError, match="ends before it starts"):
        resolve_gpus(nodes, (), 10, 10, count=1)


# -- property: nobody runs on reserved GPUs during a window it is not part of ------------

SMALL = PolicyParams(bf_interval_s=0.0, priority_calc_period_s=60.0,
                     las_thresholds_gpu_s=(500.0, 5000.0))
PROJECTS = ("a", "b")

jobs_st = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(1, 2500), st.sampled_from([1, 2, 3, 4, 6, 8]),
              st.sampled_from(PROJECTS), st.sampled_from([None, None, "r0", "r1"])),
    min_size=1, max_size=25)
resv_st = st.lists(
    st.tuples(st.integers(0, 4000), st.integers(100, 3000), st.integers(1, 8),
              st.sampled_from([(), ("a",), ("a", "b")])),
    min_size=1, max_size=3)


def _simulate(policy: str, rows: list[tuple[int, int, int, str, str | None]],
              resv: tuple[Reservation, ...]) -> list[RunningJob]:
    """An event loop over the core: jobs run exactly their walltime."""
    sched = make_policy(policy, SMALL).scheduler(NODES, {}, 0.0)
    sched.set_reservations(resv)
    arrivals = sorted(((float(s), PendingJob(f"j{i}", p, g, walltime_s=float(w),
                                             submit_time=float(s), reservation=r))
                       for i, (s, w, g, p, r) in enumerate(rows)), key=lambda e: e[0])
    times = sorted({t for t, _ in arrivals} | {t for r in resv for t in (r.start, r.end)})
    ended: list[RunningJob] = []
    now = -1.0
    wake: float | None = None
    for _ in range(2000):
        ends = [rj.expected_end for rj in sched.running.values()]
        nxt = min([t for t in times if t > now] + ends + ([wake] if wake else []),
                  default=math.inf)
        if not sched.pending and not arrivals:
            break
        if nxt == math.inf:
            break
        now = nxt
        for jid in [j for j, rj in sched.running.items() if rj.expected_end <= now]:
            ended.append(sched.finish(jid, now))
        while arrivals and arrivals[0][0] <= now:
            sched.submit(arrivals.pop(0)[1])
        res = sched.schedule(now, full=True)
        for rj, _ in res.preempted:  # its run so far, then back in the queue
            ended.append(replace(rj, walltime_s=now - rj.start_time))
            sched.submit(PendingJob(rj.job_id, rj.project, rj.gpus, walltime_s=rj.walltime_s,
                                    submit_time=rj.submit_time, reservation=rj.reservation))
        wake = res.wake_at if res.wake_at and res.wake_at > now else None
    return ended + list(sched.running.values())


@pytest.mark.parametrize("policy", policy_names())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=jobs_st, rs=resv_st)
def test_no_job_overlaps_a_reservation_it_is_not_part_of(
    policy: str, rows: list[tuple[int, int, int, str, str | None]],
    rs: list[tuple[int, int, int, tuple[str, ...]]],
) -> None:
    made: list[Reservation] = []
    for k, (start, length, count, projects) in enumerate(rs):
        try:
            gpus = resolve_gpus(NODES, made, start, start + length, count=count)
        except ReservationError:
            continue
        made.append(Reservation(f"r{k}", float(start), float(start + length), gpus,
                                frozenset(projects), maintenance=not projects))
    runs = _simulate(policy, rows, tuple(made))
    by_name = {r.name: r for r in made}
    for rj in runs:
        if rj.reservation is not None:  # inside its reservation's window and GPUs
            r = by_name[rj.reservation]
            assert r.start <= rj.start_time and rj.expected_end <= r.end, rj
            held = dict(r.gpus)
            assert all(len(g) <= held.get(n, 0) for n, g in rj.placement), rj
    # at every instant a window starts or a job starts: on each node, the jobs outside a
    # reservation hold at most the GPUs it leaves (its own jobs at most what it holds)
    instants = {rj.start_time for rj in runs} | {r.start for r in made}
    for t in instants:
        live = [rj for rj in runs if rj.start_time <= t < rj.expected_end]
        for r in made:
            if not r.start <= t < r.end:
                continue
            for node, held_k in r.gpus:
                outside = sum(len(g) for rj in live if rj.reservation != r.name
                              for n, g in rj.placement if n == node)
                inside = sum(len(g) for rj in live if rj.reservation == r.name
                             for n, g in rj.placement if n == node)
                assert outside <= 4 - held_k, (t, r, node, live)
                assert inside <= held_k


def test_reservations_replaced_and_cleared_between_cycles() -> None:
    sched = make_policy("easy-backfill").scheduler(NODES, {}, 0.0)
    sched.set_reservations([maint("m", 0.0, 1000.0, "node1", "node2")])
    sched.submit(job("1").gpus(1).walltime(10).build())
    assert not sched.schedule(0.0).starts
    sched.set_reservations([])  # the operator deleted it
    assert [rj.job_id for _, rj in sched.schedule(1.0).starts] == ["1"]


def test_jobs_of_a_deleted_reservation_count_as_outside_ones() -> None:
    # 'old' was deleted while its job runs on node1 until 5000; 'm' holds 2 GPUs of
    # node1 from 1000: only 4 - 2 - 2 = 0 GPUs of node1 are left for long outside jobs
    m = Reservation("m", 1000.0, 2000.0, (("node1", 2),), maintenance=True)
    orphan = RunningJob("o", "p", 2, (("node1", (0, 1)),), 0.0, 5000.0, reservation="old")
    starts, _ = decide("fifo", 0.0, [job("1").gpus(2).walltime(4000).build()], [m], (orphan,))
    assert starts["1"][0][0] == "node2"
