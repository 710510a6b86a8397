"""slurm.conf -> simulator settings (``rechenwerk twin validate --slurm-conf``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.slurm_conf import (
    parse_slurm_conf,
    read_slurm_conf,
    slurm_duration_s,
)

CONF = """\
# a comment
ClusterName=test
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=45,bf_max_job_test=50
PriorityType=priority/multifactor
PriorityDecayHalfLife=0
PriorityCalcPeriod=2
PriorityWeightAge=100
PriorityWeightFairshare=2000   # trailing comment
PriorityWeightJobSize=300
PriorityWeightQOS=40
PriorityMaxAge=1-12:00:00
NodeName=gpu[01-03] CPUs=32 Gres=gpu:h100:8 State=UNKNOWN
NodeName=login CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES
"""


def test_time_formats() -> None:
    assert slurm_duration_s("5", key="k") == 300.0  # bare number = minutes
    assert slurm_duration_s("01:30", key="k") == 90.0
    assert slurm_duration_s("01:00:05", key="k") == 3605.0
    assert slurm_duration_s("7-0", key="k") == 7 * 86400.0
    assert slurm_duration_s("1-02:03:04", key="k") == 86400 + 2 * 3600 + 3 * 60 + 4
    with pytest.raises(InvalidInput, match="not a Slurm time"):
        slurm_duration_s("soon", key="PriorityMaxAge")


def test_reads_weights_intervals_and_gpu_nodes() -> None:
    conf = parse_slurm_conf(CONF, "t.conf")
    assert conf.policy == "multifactor+conservative-backfill"
    p = conf.params()
    assert (p.weight_age, p.weight_fairshare, p.weight_jobsize, p.weight_qos) == (
        100.0,
        2000.0,
        300.0,
        40.0,
    )
    assert p.bf_interval_s == 45.0 and p.bf_max_job_test == 50
    assert p.priority_calc_period_s == 120.0  # PriorityCalcPeriod is in minutes
    assert p.max_age_s == 1.5 * 86400
    assert p.fairshare_half_life_s == math.inf  # 0 = no decay
    assert conf.sched["batch_sched_delay"] == 0.0
    assert conf.sched["bf_resolution"] == 60.0  # absent: Slurm's default
    cl = conf.cluster()
    assert [n.name for n in cl.nodes] == ["gpu01", "gpu02", "gpu03"]  # login has no GPU
    assert {n.gpus for n in cl.nodes} == {8} and cl.nodes[0].gpu_type == "h100"
    assert conf.nodes_with_gpus()[0].cpus == 32
    assert conf.defaulted == ()


def test_absent_keys_take_slurms_defaults_and_are_listed() -> None:
    conf = parse_slurm_conf("NodeName=n1 CPUs=8 Gres=gpu:4\n", "min.conf")
    assert conf.policy == "conservative-backfill"  # priority/basic: FIFO order
    p = conf.params()
    assert p.weight_fairshare == 0.0 and p.bf_interval_s == 30.0
    assert p.bf_max_job_test == 500  # Slurm's default, not the simulator's
    assert p.priority_calc_period_s == 300.0
    assert p.fairshare_half_life_s == 7 * 86400.0
    assert "prioritydecayhalflife" in conf.defaulted
    assert conf.cluster().nodes[0].gpu_type == "gpu"


def test_builtin_scheduler_means_no_backfill() -> None:
    conf = parse_slurm_conf(
        "SchedulerType=sched/builtin\nPriorityType=priority/multifactor\nNodeName=n1 Gres=gpu:1\n"
    )
    assert conf.policy == "multifactor"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("SchedulerType=sched/wiki\nNodeName=n Gres=gpu:1\n", "no simulator equivalent"),
        ("PriorityWeightAge=lots\n", "not a non-negative integer"),
        ("SchedulerParameters=bf_interval=x\n", "bf_interval='x' is not a number"),
        ("JustAWord\n", "expected Key=Value"),
    ],
)
def test_bad_input_names_the_key(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_slurm_conf(text).policy  # noqa: B018 - the property validates


def test_no_gpu_nodes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no NodeName line with Gres=gpu"):
        parse_slurm_conf("NodeName=n CPUs=4\n").cluster()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        read_slurm_conf(tmp_path / "absent.conf")
