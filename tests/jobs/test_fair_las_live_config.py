"""The live service accepts fair-las as RECHENWERK_SCHEDULER_POLICY."""

from __future__ import annotations

from rechenwerk.config import Settings
from rechenwerk.jobs.policy_config import configured_policy
from rechenwerk.scheduling import Node, PendingJob, ProjectInfo, Snapshot


def test_loop_policy_config_accepts_fair_las() -> None:
    pol = configured_policy(Settings(scheduler_policy="fair-las"))
    assert pol.name == "fair-las"
    d = pol.decide(Snapshot(now=0.0, nodes=(Node("node1", 8),), pending=(
        PendingJob("1", project="p", gpus=2), PendingJob("2", project="q", gpus=8)),
        projects={"p": ProjectInfo(share=1.0), "q": ProjectInfo(share=1.0)}))
    assert [st.job_id for st in d.starts] == ["1"] and "2" in d.waiting
