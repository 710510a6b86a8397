"""The loop's incremental use of the scheduling core decides exactly like
``Policy.decide`` on the same snapshot for clock-independent policies, across a random
sequence of submissions, starts, ends, cancels, launch failures and drains."""

from __future__ import annotations

import random

import pytest

from rechenwerk.scheduling.incremental import IncrementalCore
from rechenwerk.scheduling.model import Node, PendingJob, RunningJob, Snapshot
from rechenwerk.scheduling.policies import make_policy


@pytest.mark.parametrize("policy_name", ["fifo", "easy-backfill", "conservative-backfill"])
@pytest.mark.parametrize("seed", range(1, 9))
def test_incremental_equals_full_decide(policy_name: str, seed: int) -> None:
    rng = random.Random(seed)
    policy = make_policy(policy_name)
    core = IncrementalCore(policy, rebuild_s=1e9)
    nodes = [Node(f"n{i}", 8) for i in range(6)]
    pending: dict[str, PendingJob] = {}
    running: dict[str, RunningJob] = {}
    now = 0.0
    next_id = 1
    for _step in range(60):
        now += rng.uniform(1, 120)
        for _ in range(rng.randint(0, 4)):  # submissions
            jid = str(next_id)
            next_id += 1
            pending[jid] = PendingJob(job_id=jid, project=f"p{rng.randint(1, 3)}",
                                      gpus=rng.choice([1, 2, 4, 8, 16]),
                                      walltime_s=rng.choice([600.0, 3600.0, 7200.0]),
                                      submit_time=now)
        for jid in [j for j in running if rng.random() < 0.2]:  # ends
            del running[jid]
        if pending and rng.random() < 0.1:  # a cancel
            del pending[rng.choice(sorted(pending))]
        if rng.random() < 0.1:  # drain or resume a node
            k = rng.randrange(len(nodes))
            n = nodes[k]
            nodes[k] = Node(n.name, n.gpus, n.gpu_type, n.block, not n.available)
        snap = Snapshot(now=now, nodes=tuple(nodes), running=tuple(running.values()),
                        pending=tuple(pending.values()))
        full = policy.decide(snap)
        inc = core.decide(snap)
        assert [(s.job_id, s.placement) for s in inc.starts] == [
            (s.job_id, s.placement) for s in full.starts]
        assert dict(inc.waiting) == dict(full.waiting)
        for s in full.starts:
            job = pending[s.job_id]
            if rng.random() < 0.1:
                continue  # the launch failed: the job stays pending
            del pending[s.job_id]
            running[s.job_id] = RunningJob(job_id=s.job_id, project=job.project,
                                           gpus=job.gpus, placement=s.placement,
                                           start_time=now, walltime_s=job.walltime_s,
                                           submit_time=job.submit_time)
    assert core.rebuilds == 1  # everything after the first cycle was incremental
