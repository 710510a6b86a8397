"""The live core's queue view (what the loop publishes each cycle): the jobs its last pass
left waiting, in that pass's order, equal to the view a fresh scheduler gives for the
same snapshot."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rechenwerk.scheduling.incremental import IncrementalCore
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, Snapshot
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.scheduling.queue_view import explain_queue


def _job(jid: str, project: str, t: float, gpus: int = 4) -> PendingJob:
    return PendingJob(job_id=jid, project=project, gpus=gpus, qos="normal",
                      walltime_s=3600.0, submit_time=t)


PROJECTS = {"heavy": ProjectInfo(share=1.0, usage_gpu_s=9e6),
            "light": ProjectInfo(share=1.0, usage_gpu_s=1.0)}
PENDING = tuple(_job(str(i), "heavy" if i % 2 else "light", float(i)) for i in range(8))


@pytest.mark.parametrize("policy_name", ["fifo", "multifactor+easy-backfill", "las"])
def test_queue_view_is_what_the_pass_left_in_its_order(policy_name: str) -> None:
    snap = Snapshot(now=100.0, nodes=(Node("n1", 8),), running=(), pending=PENDING,
                    projects=PROJECTS)
    core = IncrementalCore(make_policy(policy_name))
    assert core.queue_view(snap.now) is None  # no cycle yet
    decision = core.decide(snap)
    started = {s.job_id for s in decision.starts}
    assert len(started) == 2  # two 4-GPU jobs fill the node
    view = core.queue_view(snap.now)
    assert view is not None
    assert {q.job_id for q in view.jobs} == {j.job_id for j in PENDING} - started
    assert [q.position for q in view.jobs] == list(range(1, 7))
    fresh = explain_queue(make_policy(policy_name), replace(
        snap, pending=tuple(j for j in PENDING if j.job_id not in started)))
    assert [q.job_id for q in view.jobs] == [q.job_id for q in fresh.jobs]
    assert view.order == fresh.order and view.policy == fresh.policy

