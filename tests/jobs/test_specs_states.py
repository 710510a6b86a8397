"""Job spec parsing and the state machine."""

from __future__ import annotations

import pytest

from rechenwerk.errors import InvalidInput, InvalidTransition
from rechenwerk.jobs.specs import (
    check_against_centre,
    format_duration,
    load_spec_text,
    parse_duration,
    parse_spec,
)
from rechenwerk.jobs.states import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    JobState,
    check_transition,
    sources_of,
)

BASE = {"name": "t", "project": "p", "command": "python3 train.py --lr 0.1", "gpus": 2,
        "walltime": "2h"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(3600, 3600), ("3600", 3600), ("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("1d", 86400),
     ("1-00:00:00", 86400), ("2-12", 2 * 86400 + 12 * 3600), ("01:30:00", 5400),
     ("10:30", 630), ("45s", 45), (1.4, 1)],
)
def test_parse_duration(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "-5", 0, -3, True, "2x"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(5400) == "01:30:00"
    assert format_duration(86400 + 61) == "1-00:01:01"


def test_spec_from_yaml_splits_command_with_shlex() -> None:
    spec = load_spec_text(
        "name: t\nproject: p\ncommand: python3 train.py --msg 'hello world'\n"
        "gpus: 4\nnodes: 2\nwalltime: 90m\nqos: high\ncheckpoint_interval: 10m\n"
        "env: {SEED: '1'}\nidempotency_key: k1\n"
    )
    assert spec.command == ["python3", "train.py", "--msg", "hello world"]
    assert spec.walltime_s == 5400 and spec.checkpoint_interval_s == 600
    assert spec.qos == "high" and spec.nodes == 2 and spec.env == {"SEED": "1"}
    assert spec.gpu_hours_requested == pytest.approx(6.0)
    again = parse_spec(spec.to_document())
    assert again == spec


def test_spec_from_json() -> None:
    spec = load_spec_text('{"name": "j", "project": "p", "script": "echo hi", "gpus": 1, '
                          '"walltime": 60}')
    assert spec.script == "echo hi" and spec.command is None


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"gpus": 0}, "gpus", "at least 1"),
        ({"gpus": -2}, "gpus", "at least 1"),
        ({"walltime": "forever"}, "walltime", "not a duration"),
        ({"qos": "urgent"}, "qos", "normal"),
        ({"colour": "red"}, "colour", "not a known field"),
        ({"name": "bad name!"}, "name", "not a valid job name"),
        ({"env": {"RECHENWERK_TOKEN": "x"}}, "env", "set by Rechenwerk"),
        ({"nodes": 3}, "(spec)", "multiple of nodes"),
        ({"script": "echo"}, "(spec)", "exactly one of"),
        ({"command": []}, "command", "must name a program"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_spec({**BASE, **change})
    err = info.value
    paths = [i.path for i in err.issues]
    assert field in paths, paths
    assert any(fragment in i.message for i in err.issues), [i.message for i in err.issues]


def test_missing_fields_are_listed() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_spec({"name": "x"})
    paths = {i.path for i in info.value.issues}
    assert {"project", "gpus", "walltime"} <= paths
    assert "is required" in info.value.message


def test_invalid_yaml_says_where() -> None:
    with pytest.raises(InvalidInput, match="line 2"):
        load_spec_text("name: t\n  bad: [unclosed\n")
    with pytest.raises(InvalidInput, match="mapping"):
        load_spec_text("- just a list\n")


def test_centre_limits() -> None:
    spec = parse_spec({**BASE, "gpus": 32})
    with pytest.raises(InvalidInput, match="only 16") as info:
        check_against_centre(spec, total_gpus=16, max_gpus_per_node=8, node_count=2)
    assert info.value.field == "gpus"
    long = parse_spec({**BASE, "walltime": "3d", "qos": "high"})
    with pytest.raises(InvalidInput, match="above the limit of QOS 'high'") as info:
        check_against_centre(long, total_gpus=16, max_gpus_per_node=8, node_count=2)
    assert info.value.field == "walltime"
    wide = parse_spec({**BASE, "gpus": 16, "gpus_per_node": 16})
    with pytest.raises(InvalidInput, match="largest node has 8"):
        check_against_centre(wide, total_gpus=32, max_gpus_per_node=8, node_count=4)
    check_against_centre(parse_spec(BASE), total_gpus=16, max_gpus_per_node=8, node_count=2)
    # every limit exceeded is reported at once, each under its field
    both = parse_spec({**BASE, "gpus": 32, "walltime": "3d", "qos": "high"})
    with pytest.raises(InvalidInput, match=r"only 16.*\(and 1 more\)") as info:
        check_against_centre(both, total_gpus=16, max_gpus_per_node=8, node_count=2)
    assert [(i.path, i.message.split(" (")[0]) for i in info.value.issues] == [
        ("gpus", "the job asks for 32 GPUs but the centre has only 16. Ask for at most 16 "
                 "GPUs."),
        ("walltime", "walltime 3-00:00:00 is above the limit of QOS 'high'")]


def test_terminal_states_stay_terminal() -> None:
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()
        for target in JobState:
            with pytest.raises(InvalidTransition):
                check_transition(state, target, job_id=1)


def test_transition_table() -> None:
    check_transition(JobState.PENDING, JobState.STARTING)
    check_transition(JobState.STARTING, JobState.PENDING)  # launch failed -> requeue
    check_transition(JobState.RUNNING, JobState.PREEMPTED)
    check_transition(JobState.PREEMPTED, JobState.PENDING)  # requeue
    with pytest.raises(InvalidTransition, match="pending to running"):
        check_transition(JobState.PENDING, JobState.RUNNING, job_id=4)
    assert sources_of(JobState.RUNNING) == {JobState.STARTING}
    assert sources_of(JobState.COMPLETED) == {JobState.STARTING, JobState.RUNNING}
