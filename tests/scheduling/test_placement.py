"""Placement rules: gang, best fit, whole nodes in few topology blocks, types, drains."""

from __future__ import annotations

import pytest
from sched_builders import cluster, gpus_of, job, snap

from rechenwerk.scheduling import make_policy
from rechenwerk.scheduling.placement import ClusterState


def _start(nodes, running, pending):  # type: ignore[no-untyped-def]
    d = make_policy("fifo").decide(snap(0.0, nodes, running, pending))
    return {s.job_id: s.placement for s in d.starts}, d.waiting


@pytest.mark.parametrize(
    ("name", "running", "want_node"),
    [
        # node1 has 2 free, node2 8 free: a 2-GPU job fills node1 (best fit)
        ("tightest node", [job("r").gpus(6).running(0, ("node1", range(6)))], "node1"),
        # node1 has 1 free (too small), node2 3 free, node3 8 free -> node2
        (
            "smallest that fits",
            [
                job("r1").gpus(7).running(0, ("node1", range(7))),
                job("r2").gpus(5).running(0, ("node2", range(5))),
            ],
            "node2",
        ),
        ("empty cluster -> lowest index", [], "node1"),
    ],
)
def test_best_fit_for_single_node_jobs(name: str, running: list, want_node: str) -> None:
    starts, _ = _start(cluster(3), running, [job("a").gpus(2)])
    assert starts["a"][0][0] == want_node, name


def test_gang_job_gets_whole_nodes_or_nothing() -> None:
    nodes = cluster(3)
    # node1 full, node2 half: 12 GPUs free but only one whole node -> 16-GPU job waits
    running = [
        job("r1").gpus(8).running(0, ("node1", range(8))),
        job("r2").gpus(4).running(0, ("node2", range(4))),
    ]
    starts, waiting = _start(nodes, running, [job("big").gpus(16)])
    assert starts == {}
    assert waiting["big"].code == "resources"
    # with two whole nodes free it starts on exactly those, all 16 GPUs at once
    starts, _ = _start(nodes, running[:1], [job("big").gpus(16)])
    assert {n for n, _ in starts["big"]} == {"node2", "node3"}
    assert len(gpus_of(starts["big"])) == 16


def test_gang_reason_when_free_gpus_are_fragmented() -> None:
    running = [
        job("r1").gpus(4).running(0, ("node1", range(4))),
        job("r2").gpus(4).running(0, ("node2", range(4))),
    ]
    starts, waiting = _start(cluster(2), running, [job("big").gpus(8).shape(2, 4)])
    assert "big" in starts  # 2 x 4 fits the two half nodes
    starts, waiting = _start(cluster(2), running, [job("w").gpus(8)])
    assert starts == {} and waiting["w"].code == "resources"
    assert "fragmented" in waiting["w"].message


def test_multi_node_job_stays_in_one_block_when_possible() -> None:
    nodes = cluster(6, per_block=2)  # blocks b0={1,2}, b1={3,4}, b2={5,6}
    # block b0 has one busy GPU, so the 16-GPU job must use b1 or b2, in one block
    running = [job("r").gpus(1).running(0, ("node1", [0]))]
    starts, _ = _start(nodes, running, [job("big").gpus(16)])
    used = {n for n, _ in starts["big"]}
    assert used in ({"node3", "node4"}, {"node5", "node6"})


def test_multi_node_job_spans_fewest_blocks() -> None:
    nodes = cluster(6, per_block=3)  # b0={1,2,3}, b1={4,5,6}
    running = [job("r").gpus(8).running(0, ("node1", range(8)))]
    # 32 GPUs = 4 nodes: 2 free in b0 + 3 in b1 -> must span both, taking all of b1
    starts, _ = _start(nodes, running, [job("big").gpus(32)])
    used = {n for n, _ in starts["big"]}
    assert len(used) == 4 and {"node4", "node5", "node6"} <= used


def test_non_multiple_of_node_size_uses_whole_nodes_plus_remainder() -> None:
    starts, _ = _start(cluster(3), [], [job("j").gpus(12)])
    counts = sorted(len(g) for _, g in starts["j"])
    assert counts == [4, 8]


def test_gpu_type_and_drained_nodes_are_respected() -> None:
    nodes = cluster(2, gpu_type="A100") + cluster(2, gpu_type="H100", prefix="h", down=["h1"])
    starts, waiting = _start(nodes, [], [job("a").gpus(8).gpu_type("H100"), job("b").gpus(8)])
    assert starts["a"][0][0] == "h2"  # h1 is drained
    assert starts["b"][0][0] == "node1"
    _, waiting = _start(nodes, [], [job("c").gpus(16).gpu_type("H100")])
    assert waiting["c"].code == "unsatisfiable"
    _, waiting = _start(nodes, [], [job("d").gpus(1).gpu_type("B200")])
    assert waiting["d"].code == "gpu_type"


def test_cluster_state_allocate_release_roundtrip() -> None:
    st = ClusterState(cluster(2))
    plan = st.plan(job("a").gpus(3).build())
    assert plan == [(0, 3)]
    placement = st.allocate(plan)
    assert placement == (("node1", (0, 1, 2)),)
    assert st.free == [5, 8] and st.free_total == 13
    with pytest.raises(ValueError, match="allocated twice"):
        st.allocate_exact((("node1", (1,)),))
    st.release(placement)
    assert st.free == [8, 8] and st.free_total == 16
    st.set_available("node2", False)
    assert st.free_total == 8 and st.capacity == 8
