"""Jobs submitted at the same instant keep their arrival order: ids compare naturally
("9" before "10"), in the one-call API and in the live loop's incremental core alike."""

from __future__ import annotations

import pytest

from rechenwerk.scheduling import Node, PendingJob, Snapshot, arrival_key, make_policy


@pytest.mark.parametrize(
    "ids",
    [["9", "10"], ["99", "100", "101"], ["L9", "L10"], ["job-2", "job-10", "job-10b"]],
)
def test_arrival_key_orders_ids_naturally(ids: list[str]) -> None:
    jobs = [PendingJob(job_id=i, submit_time=5.0) for i in ids]
    assert [j.job_id for j in sorted(reversed(jobs), key=arrival_key)] == ids


def test_submit_time_still_comes_first() -> None:
    early, late = PendingJob(job_id="10", submit_time=1.0), PendingJob(job_id="9", submit_time=2.0)
    assert sorted([late, early], key=arrival_key) == [early, late]


@pytest.mark.parametrize("policy", ["fifo", "easy-backfill", "multifactor"])
def test_same_instant_fifo_start_the_earlier_id(policy: str) -> None:
    # One 8-GPU node, two 8-GPU jobs submitted at the same second: job 9 came first.
    snap = Snapshot(
        now=10.0,
        nodes=(Node(name="node01", gpus=8),),
        pending=(PendingJob(job_id="10", gpus=8, submit_time=0.0, walltime_s=60),
                 PendingJob(job_id="9", gpus=8, submit_time=0.0, walltime_s=60)),
    )
    decision = make_policy(policy).decide(snap)
    assert [s.job_id for s in decision.starts] == ["9"]
    assert "10" in decision.waiting
