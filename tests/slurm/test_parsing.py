"""Unit tests (no Slurm needed): hostlists, the v0.0.38 schema module, state mapping and
the sync planner."""

from __future__ import annotations

from datetime import UTC, datetime

from rechenwerk.accounting.slurm_sync import (
    DesiredAccount,
    SlurmAccountState,
    plan,
)
from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.slurm import v0_0_38
from rechenwerk.execution.slurm.backend import explain_reason
from rechenwerk.execution.slurm.cli_transport import gpu_minutes_from_tres
from rechenwerk.execution.slurm.hostlist import expand_hostlist
from rechenwerk.execution.slurm.types import map_state


def test_hostlists() -> None:
    assert expand_hostlist("node[1-3,7],gpu5") == ("node1", "node2", "node3", "node7", "gpu5")
    assert expand_hostlist("n[08-10]") == ("n08", "n09", "n10")
    assert expand_hostlist("") == ()
    assert expand_hostlist("None assigned") == ()


def test_states_and_reasons() -> None:
    assert map_state("CANCELLED by 0") is BackendJobState.CANCELLED
    assert map_state("NODE_FAIL") is BackendJobState.FAILED
    assert map_state("REQUEUED") is BackendJobState.PENDING
    assert map_state("WEIRD") is BackendJobState.UNKNOWN
    assert explain_reason("AssocGrpGRESMinutes").startswith("AssocGrpGRESMinutes: ")
    assert explain_reason("None") == "None" and explain_reason(None) is None


def test_live_job_parsing() -> None:
    doc = {
        "jobs": [
            {
                "job_id": 7,
                "job_state": "FAILED",
                "exit_code": 768,
                "start_time": 100,
                "end_time": 160,
                "nodes": "node[1-2]",
                "tres_alloc_str": "cpu=2,gres/gpu=4",
                "state_reason": "NonZeroExitCode",
                "account": "p",
                "user_name": "u",
            },
            {
                "job_id": 8,
                "job_state": "PENDING",
                "exit_code": 0,
                "start_time": 999,
                "end_time": 0,
                "nodes": "",
                "tres_alloc_str": "",
                "state_reason": "AssocGrpGRESMinutes",
            },
            {
                "job_id": 9,
                "job_state": "CANCELLED",
                "exit_code": 9,
                "start_time": 5,
                "end_time": 6,
                "nodes": "node1",
                "tres_alloc_str": "gres/gpu:a100=2",
            },
        ]
    }
    a, b, c = v0_0_38.parse_live_jobs(doc)
    assert (a.exit_code, a.gpus, a.nodes) == (3, 4, ("node1", "node2"))
    assert a.start_time == datetime.fromtimestamp(100, UTC)
    assert b.start_time is None and b.reason == "AssocGrpGRESMinutes" and b.gpus is None
    assert c.exit_code == 128 + 9 and c.gpus == 2


def test_accounting_parsing_keeps_latest_run_and_distrusts_exit_code() -> None:
    def rec(state: str, start: int, end: int) -> dict[str, object]:
        return {
            "job_id": 48,
            "state": {"current": state, "reason": "None"},
            "time": {"submission": 1, "start": start, "end": end},
            "exit_code": {"status": "SUCCESS", "return_code": 0},
            "tres": {"allocated": [{"type": "gres", "name": "gpu", "count": 2}]},
            "nodes": "node1",
            "account": "p",
            "user": "u",
            "cluster": "c",
            "comment": {"job": "rechenwerk:1.1"},
        }

    jobs = v0_0_38.parse_accounted_jobs(
        {"jobs": [rec("NODE_FAIL", 10, 11), rec("COMPLETED", 20, 30)]}
    )
    assert len(jobs) == 1
    assert (jobs[0].state, jobs[0].exit_code, jobs[0].gpus) == ("COMPLETED", 0, 2)
    failed = v0_0_38.parse_accounted_jobs({"jobs": [rec("FAILED", 20, 30)]})[0]
    assert failed.exit_code is None  # 22.05 reports 0; unknown instead of wrong
    assert failed.comment == "rechenwerk:1.1" and failed.cluster == "c"


def test_empty_result_is_not_an_error() -> None:
    v0_0_38.check_errors({"errors": [{"error_number": 9003, "error": "Nothing found"}]}, "x")


def test_sync_plan_and_drift() -> None:
    assert gpu_minutes_from_tres("cpu=10,gres/gpu=600") == 600
    assert gpu_minutes_from_tres("") is None
    want = [
        DesiredAccount("new", 600, frozenset({"alice"}), periods="1"),
        DesiredAccount("old", 120, frozenset({"alice", "bob"}), periods="2"),
        DesiredAccount("same", 60, frozenset({"carol"}), periods="3"),
        DesiredAccount("rolled", 60, frozenset(), periods="5"),
        DesiredAccount("adopted", 60, frozenset(), periods="6"),
    ]
    have = {
        "old": SlurmAccountState("old", 999, frozenset({"alice", "mallory"}), "2"),
        "same": SlurmAccountState("same", 60, frozenset({"carol"}), "3"),
        "rolled": SlurmAccountState("rolled", 60, frozenset(), "4"),
        "adopted": SlurmAccountState("adopted", 60, frozenset(), None),
    }
    p = plan(want, have)
    got = [(c.action, c.account, c.user, c.current, c.desired, c.drift) for c in p.changes]
    assert got == [
        ("add_account", "new", None, None, "600", False),
        ("add_user", "new", "alice", None, None, False),
        ("set_limit", "old", None, "999", "120", True),
        ("add_user", "old", "bob", None, None, True),
        ("remove_user", "old", "mallory", None, None, True),
        ("new_period", "rolled", None, "4", "5", False),
        ("new_period", "adopted", None, "not managed", "6", True),
    ]
    assert p.changes[0].periods == "1"
    assert len(p.drift) == 4
    assert plan(want[2:3], have).changes == []
