"""Golden figures: the first 2,000 Philly jobs (by submit time) on 16x8 GPUs.

The replay is deterministic; these figures change only when a policy, the engine or the
metrics change on purpose (then re-run and update them, and say why in the commit).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.traces import read_trace

# policy: (avg wait s, p95 wait s, avg JCT s, utilisation, Jain, makespan s, preemptions)
GOLDEN = {
    "fifo": (2467914.7, 2940367.0, 2525728.8, 0.606973, 0.343992, 5952861.0, 0),
    "easy-backfill": (534337.0, 538525.1, 592151.1, 0.607823, 0.538365, 5944538.0, 0),
    "conservative-backfill": (270169.7, 650957.8, 327983.8, 0.607823, 0.438698, 5944538.0, 0),
    "multifactor": (1160415.2, 1391243.0, 1218229.3, 0.607823, 0.718730, 5944538.0, 0),
    "multifactor+easy-backfill": (
        497609.1,
        540070.3,
        555423.2,
        0.607823,
        0.720903,
        5944538.0,
        0,
    ),
    "multifactor+conservative-backfill": (
        488808.0,
        537925.7,
        546622.1,
        0.607823,
        0.719732,
        5944538.0,
        0,
    ),
    "quota": (93162.5, 116579.3, 152834.5, 0.561517, 0.975623, 6443620.0, 580),
    "las": (0.0, 0.0, 107583.4, 0.568562, 0.941998, 6404952.0, 2947),
}


@pytest.fixture(scope="module")
def philly_slice(shared_dir: Path):  # type: ignore[no-untyped-def]
    trace = read_trace(shared_dir / "traces" / "philly.csv", "philly")
    return trace.jobs[:2000]


SLOW = {"conservative-backfill", "multifactor+conservative-backfill", "multifactor+easy-backfill"}


@pytest.mark.parametrize(
    "policy", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in GOLDEN]
)
def test_golden_philly_slice(policy: str, philly_slice) -> None:  # type: ignore[no-untyped-def]
    r = run_simulation(philly_slice, load_cluster("16x8"), policy)
    m = r.metrics
    got = (
        m.avg_wait_s,
        m.p95_wait_s,
        m.avg_jct_s,
        m.utilization,
        m.jain_fairness,
        m.makespan_s,
        r.preemptions,
    )
    want = GOLDEN[policy]
    assert got[:6] == pytest.approx(want[:6], rel=1e-6, abs=0.05), policy
    assert got[6] == want[6]
    assert m.jobs == 2000


def test_golden_relations() -> None:
    g = GOLDEN
    # backfill never makes the average wait worse than strict FIFO on this slice
    assert g["easy-backfill"][0] < g["fifo"][0]
    assert g["conservative-backfill"][0] < g["fifo"][0]
    # fair share and quota improve fairness across the 15 virtual clusters
    assert g["multifactor"][4] > g["fifo"][4] and g["quota"][4] > g["fifo"][4]
    # LAS favours short jobs: lowest average JCT, paid for with preemptions
    assert g["las"][2] == min(v[2] for v in g.values()) and g["las"][6] > 0
