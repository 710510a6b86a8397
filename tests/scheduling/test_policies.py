"""Each policy's rule, table-driven with the builders."""

from __future__ import annotations

import math

import pytest
from sched_builders import cluster, job, snap

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling import PolicyParams, ProjectInfo, make_policy, policy_names


def started(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.job_id for s in decision.starts]


def test_unknown_policy_names_the_field_and_the_choices() -> None:
    with pytest.raises(InvalidInput) as exc:
        make_policy("sjf")
    assert exc.value.field == "policy"
    assert "easy-backfill" in (exc.value.hint or "")


def test_bad_parameter_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        PolicyParams(fairshare_half_life_s=0)
    assert exc.value.field == "fairshare_half_life_s"


def test_registry_composes_one_ordering_with_one_backfill() -> None:
    from rechenwerk.scheduling.model import Node
    from rechenwerk.scheduling.policies import BACKFILLS, ORDERINGS, compose

    pairs = {
        "fifo": ("fifo", "none"),
        "easy-backfill": ("fifo", "easy"),
        "conservative-backfill": ("fifo", "conservative"),
        "multifactor": ("multifactor", "none"),
        "multifactor+easy-backfill": ("multifactor", "easy"),
        "multifactor+conservative-backfill": ("multifactor", "conservative"),
    }
    for name, (o, b) in pairs.items():
        s = make_policy(name).scheduler([Node("n1", 8)])
        assert type(s) is compose(o, b)
        assert isinstance(s, ORDERINGS[o]) and isinstance(s, BACKFILLS[b])
        assert s.name == name
    # the ordering's hooks run before the backfill's (it refreshes priorities first)
    mro = compose("multifactor", "easy").__mro__
    assert mro.index(ORDERINGS["multifactor"]) < mro.index(BACKFILLS["easy"])


@pytest.mark.parametrize("name", policy_names())
def test_every_waiting_job_has_a_reason(name: str) -> None:
    nodes = cluster(2)
    running = [job("r").gpus(8).walltime(100).running(0, ("node1", range(8)))]
    pending = [
        job(f"j{i}").gpus(g).walltime(50 * (i + 1)).submit(i)
        for i, g in enumerate([16, 4, 4, 2, 8, 1, 3])
    ]
    d = make_policy(name).decide(snap(10.0, nodes, running, pending))
    ids = {p.build().job_id for p in pending}
    assert set(started(d)) | set(d.waiting) == ids
    assert not set(started(d)) & set(d.waiting)
    assert all(r.code and r.message for r in d.waiting.values())


def test_fifo_blocks_behind_the_head() -> None:
    nodes = cluster(2)
    running = [job("r").gpus(8).walltime(100).running(0, ("node1", range(8)))]
    d = make_policy("fifo").decide(
        snap(0.0, nodes, running, [job("big").gpus(16).submit(0), job("small").gpus(1).submit(1)])
    )
    assert started(d) == []
    assert d.waiting["big"].code == "resources"
    assert d.waiting["small"].code == "priority" and "big" in d.waiting["small"].message


# cluster 2x8; node1 busy until t=100, node2 has 4 GPUs busy until t=50.
# The 16-GPU head gets a reservation at t=100 on both nodes.
BACKFILL_CASES = [
    # (case, candidate walltime, candidate gpus, starts?)
    ("short job ends before the reservation", 40, 4, True),
    ("long job would delay the reservation", 1000, 4, False),
    ("short job but too big for the free GPUs", 40, 6, False),
]


@pytest.mark.parametrize(
    "policy", ["easy-backfill", "conservative-backfill", "multifactor+easy-backfill"]
)
@pytest.mark.parametrize(("case", "wall", "gpus", "starts"), BACKFILL_CASES)
def test_backfill_never_delays_the_reservation(
    policy: str, case: str, wall: float, gpus: int, starts: bool
) -> None:
    nodes = cluster(2)
    running = [
        job("r1").gpus(8).walltime(100).running(0, ("node1", range(8))),
        job("r2").gpus(4).walltime(50).running(0, ("node2", range(4))),
    ]
    pending = [
        job("head").gpus(16).walltime(500).submit(0),
        job("cand").gpus(gpus).walltime(wall).submit(1),
    ]
    d = make_policy(policy, PolicyParams(weight_jobsize=0, weight_fairshare=0)).decide(
        snap(0.0, nodes, running, pending)
    )
    assert ("cand" in started(d)) is starts, case
    assert "head" in d.waiting and "reserved to start in 1 min" in d.waiting["head"].message
    if not starts and gpus == 4:
        assert d.waiting["cand"].code == "reservation"


def test_easy_backfill_uses_gpus_the_reservation_does_not_need() -> None:
    # head needs 8 GPUs on one node at t=100 (node1); node2's 4 free GPUs are spare:
    # a long 4-GPU job may run there without delaying the head.
    nodes = cluster(2)
    running = [
        job("r1").gpus(8).walltime(100).running(0, ("node1", range(8))),
        job("r2").gpus(4).walltime(10_000).running(0, ("node2", range(4))),
    ]
    pending = [
        job("head").gpus(8).walltime(500).submit(0),
        job("long").gpus(4).walltime(5000).submit(1),
    ]
    d = make_policy("easy-backfill").decide(snap(0.0, nodes, running, pending))
    assert started(d) == ["long"]
    assert d.starts[0].placement[0][0] == "node2"


def test_conservative_protects_every_reservation_easy_only_the_first() -> None:
    # 1 node of 8: r runs until 100. head (8 GPUs, 100 s) reserved [100, 200).
    # second (4 GPUs, 100 s) reserved [200, 300) under conservative.
    # cand (4 GPUs, 150 s) fits now in 0 free GPUs? no: make 4 free now.
    nodes = cluster(1)
    running = [job("r").gpus(4).walltime(100).running(0, ("node1", range(4)))]
    pending = [
        job("head").gpus(8).walltime(100).submit(0),
        job("second").gpus(8).walltime(100).submit(1),
        job("cand").gpus(4).walltime(250).submit(2),
    ]
    easy = make_policy("easy-backfill").decide(snap(0.0, nodes, running, pending))
    cons = make_policy("conservative-backfill").decide(snap(0.0, nodes, running, pending))
    # cand would end at 250 > head's reservation at 100 -> neither starts it
    assert started(easy) == [] and started(cons) == []
    pending[2] = job("cand").gpus(4).walltime(90).submit(2)
    easy = make_policy("easy-backfill").decide(snap(0.0, nodes, running, pending))
    cons = make_policy("conservative-backfill").decide(snap(0.0, nodes, running, pending))
    assert started(easy) == ["cand"] and started(cons) == ["cand"]
    assert "reserved to start in 3 min" in cons.waiting["second"].message  # its own


def test_fair_share_orders_by_decayed_usage() -> None:
    nodes = cluster(1)
    running = [job("r").gpus(8).walltime(100).running(0, ("node1", range(8)))]
    pending = [
        job("heavy-job").gpus(8).project("heavy").submit(0),
        job("light-job").gpus(8).project("light").submit(50),
    ]
    projects = {
        "heavy": ProjectInfo(share=1, usage_gpu_s=1e6),
        "light": ProjectInfo(share=1, usage_gpu_s=1e4),
    }
    d = make_policy("multifactor").decide(snap(100.0, nodes, running, pending, projects))
    assert d.waiting["light-job"].code == "resources"  # light is now at the head
    assert d.waiting["heavy-job"].code == "priority"
    # with equal usage the older job is first (age)
    projects = {
        "heavy": ProjectInfo(share=1, usage_gpu_s=1e4),
        "light": ProjectInfo(share=1, usage_gpu_s=1e4),
    }
    d = make_policy("multifactor").decide(snap(100.0, nodes, running, pending, projects))
    assert d.waiting["heavy-job"].code == "resources"


def test_fair_share_respects_shares() -> None:
    from rechenwerk.scheduling.policies.ordering import MultifactorOrdering

    nodes = cluster(1)
    projects = {
        "a": ProjectInfo(share=3, usage_gpu_s=3e4),
        "b": ProjectInfo(share=1, usage_gpu_s=1e4),
    }
    s = MultifactorOrdering(nodes, PolicyParams(), projects)
    # usage exactly proportional to shares -> equal factors 2^-1
    assert s.fairshare_factor("a") == pytest.approx(0.5)
    assert s.fairshare_factor("b") == pytest.approx(0.5)


def test_fair_share_usage_decays_with_half_life() -> None:
    from rechenwerk.scheduling.policies.ordering import MultifactorOrdering

    params = PolicyParams(fairshare_half_life_s=100.0)
    s = MultifactorOrdering(cluster(1), params, {"a": ProjectInfo(usage_gpu_s=800.0)})
    s._advance_usage(200.0)
    assert s._usage["a"] == pytest.approx(200.0)  # two half-lives
    # a running 1-GPU job adds h/ln2 * (1 - 2^-dt/h) GPU-seconds of decayed usage
    s._rate["a"] = 1
    s._advance_usage(300.0)
    assert s._usage["a"] == pytest.approx(100.0 + 100.0 / 0.6931471805599453 * 0.5)


def test_qos_raises_priority() -> None:
    nodes = cluster(1)
    running = [job("r").gpus(8).walltime(100).running(0, ("node1", range(8)))]
    pending = [job("n").gpus(8).submit(0), job("h").gpus(8).qos("high").submit(10)]
    d = make_policy("multifactor").decide(snap(20.0, nodes, running, pending))
    assert d.waiting["h"].code == "resources" and d.waiting["n"].code == "priority"


QUOTA = PolicyParams(guarantees={"a": 8, "b": 8})


def test_quota_borrows_idle_capacity() -> None:
    d = make_policy("quota", QUOTA).decide(
        snap(
            0.0,
            cluster(2),
            [],
            [job("a1").gpus(8).project("a"), job("a2").gpus(8).project("a").submit(1)],
        )
    )
    assert started(d) == ["a1", "a2"]  # a2 borrows b's idle guarantee


def test_quota_reclaims_from_borrowers_by_preemption() -> None:
    running = [
        job("a1").gpus(8).project("a").running(0, ("node1", range(8))),
        job("a2").gpus(8).project("a").running(5, ("node2", range(8))),  # borrowing
    ]
    d = make_policy("quota", QUOTA).decide(
        snap(10.0, cluster(2), running, [job("b1").gpus(8).project("b").submit(9)])
    )
    assert [p.job_id for p in d.preemptions] == ["a2"]
    assert started(d) == ["b1"] and d.starts[0].placement[0][0] == "node2"


def test_quota_does_not_preempt_within_guarantee_nor_for_borrowers() -> None:
    running = [
        job("a1").gpus(8).project("a").running(0, ("node1", range(8))),
        job("b1").gpus(8).project("b").running(0, ("node2", range(8))),
    ]
    d = make_policy("quota", QUOTA).decide(
        snap(10.0, cluster(2), running, [job("b2").gpus(8).project("b").submit(9)])
    )
    assert d.preemptions == () and started(d) == []
    assert d.waiting["b2"].code == "quota"


def test_quota_skips_non_preemptible_borrowers() -> None:
    running = [
        job("a1").gpus(8).project("a").running(0, ("node1", range(8))),
        job("a2").gpus(8).project("a").pinned().running(5, ("node2", range(8))),
    ]
    d = make_policy("quota", QUOTA).decide(
        snap(10.0, cluster(2), running, [job("b1").gpus(8).project("b")])
    )
    # the newest borrower is pinned, so the project's other job is requeued instead
    assert [p.job_id for p in d.preemptions] == ["a1"] and started(d) == ["b1"]
    running[0] = job("a1").gpus(8).project("a").pinned().running(0, ("node1", range(8)))
    d = make_policy("quota", QUOTA).decide(
        snap(10.0, cluster(2), running, [job("b1").gpus(8).project("b")])
    )
    assert d.preemptions == () and d.waiting["b1"].code == "resources"


LAS = PolicyParams(las_thresholds_gpu_s=(1000.0, 10000.0))


def test_las_new_job_preempts_one_with_more_attained_service() -> None:
    # r has run 8 GPUs x 200 s = 1600 GPU-s -> queue 1; new job is in queue 0
    running = [job("r").gpus(8).running(0, ("node1", range(8)))]
    d = make_policy("las", LAS).decide(snap(200.0, cluster(1), running, [job("new").gpus(4)]))
    assert [p.job_id for p in d.preemptions] == ["r"] and started(d) == ["new"]


def test_las_same_queue_does_not_preempt() -> None:
    running = [job("r").gpus(8).running(0, ("node1", range(8)))]
    d = make_policy("las", LAS).decide(snap(100.0, cluster(1), running, [job("new").gpus(4)]))
    assert d.preemptions == () and started(d) == []  # r has 800 GPU-s: still queue 0
    assert d.wake_at == pytest.approx(125.0)  # r is demoted at 1000 GPU-s


def test_las_orders_waiting_jobs_by_attained_service() -> None:
    running = [job("r").gpus(8).walltime(100).running(0, ("node1", range(8)))]
    pending = [job("old").gpus(8).attained(50_000).submit(0), job("fresh").gpus(8).submit(5)]
    d = make_policy("las", LAS).decide(snap(10.0, cluster(2), running, pending))
    assert started(d) == ["fresh"]


def test_quota_reclaim_never_preempts_a_job_started_in_the_same_decision() -> None:
    """Found by the replay property test: project a borrows node3 with an 8-GPU job and,
    in the same decision, project b reclaims its guarantee. The borrower must simply not
    start (it never ran), not be 'preempted' while its GPUs go to b as well."""
    from rechenwerk.scheduling.params import PolicyParams
    from rechenwerk.simulation.cluster import load_cluster
    from rechenwerk.simulation.engine import run_simulation
    from rechenwerk.simulation.traces import TraceJob

    jobs = [TraceJob(f"j{i}", 0.0, 1.0, 1, "a", walltime_s=1.0) for i in range(11)]
    jobs += [TraceJob("j11", 0.0, 1.0, 8, "a", walltime_s=1.0),
             TraceJob("j12", 0.0, 1.0, 8, "b", walltime_s=1.0)]
    r = run_simulation(jobs, load_cluster("3x8"), "quota",
                       params=PolicyParams(checkpoint_interval_s=300.0), strict=True)
    by_id = {o.job_id: o for o in r.outcomes}
    assert r.preemptions == 0
    assert by_id["j12"].first_start_time == 0.0  # b got its guarantee at once
    assert by_id["j11"].first_start_time == 1.0  # a's borrower started when GPUs freed


@pytest.mark.parametrize(("seconds", "words"), [
    (-5, "now"), (0, "now"), (0.4, "now"), (45, "in 45 s"), (100, "in 1 min"),
    (3600, "in 1 h"), (7800, "in 2 h 10 min"), (86400 * 3 + 4 * 3600 + 59, "in 3 d 4 h"),
    (86400 * 2, "in 2 d"), (math.inf, "at no known time")])
def test_reservation_times_in_words(seconds: float, words: str) -> None:
    from rechenwerk.scheduling.model import starts_in

    assert starts_in(seconds) == words
