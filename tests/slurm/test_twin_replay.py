"""``rechenwerk twin``'s replay against the real daemons: a tiny slice end to end."""

from __future__ import annotations

import pytest
from slurm_helpers import SlurmAccount

from rechenwerk.execution.slurm.replay import backfill_phase, replay
from rechenwerk.simulation.fidelity import compare
from rechenwerk.simulation.slurm_conf import read_slurm_conf
from rechenwerk.simulation.traces.base import TraceJob
from rechenwerk.simulation.twin import prepare_slice, simulate, slurm_timing

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


def test_replay_tiny_slice_and_compare(slurm_account: SlurmAccount) -> None:
    if slurm_account.cluster.root is not None:
        # the twin drives the host's Slurm commands and its /etc/slurm/slurm.conf; a command
        # prefix for a cluster behind chroot/ssh is not built yet (issue 13)
        pytest.skip("rechenwerk twin validate runs against the host's own Slurm only")
    conf = read_slurm_conf()
    node = conf.nodes_with_gpus()[0]
    # 8 jobs: four 1-GPU, a whole-cluster job that must wait, then three more
    trace = [
        TraceJob(f"j{i}", float(t), float(d), g)
        for i, (t, d, g) in enumerate(
            [(0, 4, 1), (0, 4, 1), (1, 3, 2), (1, 2, 1), (2, 3, 8), (3, 2, 1), (3, 2, 2), (4, 1, 1)]
        )
    ]
    jobs = prepare_slice(
        trace,
        start=0,
        count=8,
        scale=1,
        max_duration_s=10,
        gpus_per_node=node.gpus,
        nodes=len(conf.nodes_with_gpus()),
        cpus_per_gpu=max(1, node.cpus // node.gpus),
    )
    res = replay(
        jobs,
        account=slurm_account.name,
        user=slurm_account.user,
        workdir=str(slurm_account.tmp),
        deadline_s=300,
    )
    assert set(res.states.values()) == {"COMPLETED"}, res.states
    assert set(res.times) == {j.job_id for j in jobs}
    for j in jobs:
        t = res.times[j.job_id]
        assert 0 <= t.submit <= t.start < t.end, (j.job_id, t)
        assert t.end - t.start >= j.duration_s
    # the whole-cluster job cannot overlap any other job
    big = res.times["j4"]
    assert all(t.end <= big.start or t.start >= big.end for k, t in res.times.items() if k != "j4")
    phase = backfill_phase(res.t0, conf.sched["bf_interval"])
    sim = simulate(jobs, conf, slurm_timing(conf, res.t0, phase))
    f = compare(res.times, sim, conf.cluster().total_gpus)
    assert f.jobs == 8
    assert f.spearman > 0.5  # same order, up to the one-second waves
    assert f.median_abs_error_s <= 5.0
