"""Unit tests (no Slurm needed) of the data format modules v0.0.40-v0.0.42 over output
recorded from a real Slurm 24.11.5 (tests/slurm/fixtures/slurm-24.11, see its README), of
v0.0.39 over fixtures derived from the spec, and of the format selection."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rechenwerk.errors import BackendError, InvalidInput
from rechenwerk.execution.slurm import slurm_numbers as num
from rechenwerk.execution.slurm import v0_0_38, v0_0_39, v0_0_40, v0_0_41, v0_0_42, versions
from rechenwerk.execution.slurm.types import SlurmJob, SubmitSpec, map_state

FIXTURES = Path(__file__).parent / "fixtures"
REC = FIXTURES / "slurm-24.11"
RECORDED = [v0_0_40, v0_0_41, v0_0_42]
JOBS: dict[str, str] = json.loads((REC / "jobs.json").read_text())


def load(rel: str) -> Any:
    return json.loads((REC / rel).read_text())


def cli(kind: str, fmt: ModuleType) -> Any:
    return load(f"cli/{kind}-{fmt.VERSION}.json")


def rest(name: str, fmt: ModuleType) -> Any:
    return load(f"rest/{fmt.VERSION}/{name}.json")


def by_id(jobs: list[SlurmJob]) -> dict[str, SlurmJob]:
    return {j.job_id: j for j in jobs}


def rest_jobs(fmt: ModuleType) -> dict[str, SlurmJob]:
    return by_id(fmt.parse_live_jobs(rest("jobs", fmt)["body"]))


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
@pytest.mark.parametrize("source", ["squeue", "rest"])
def test_live_jobs(fmt: ModuleType, source: str) -> None:
    jobs = by_id(fmt.parse_live_jobs(cli("squeue", fmt))) if source == "squeue" else rest_jobs(fmt)
    run = jobs[JOBS["running"]]
    assert (run.state, run.gpus, run.nodes, run.comment) == (
        "RUNNING",
        2,
        ("n2411a",),
        "rwp comment",
    )
    assert run.start_time is not None and run.end_time is None and run.exit_code is None
    assert (run.account, run.user, run.partition, run.qos, run.cluster) == (
        "root",
        "root",
        "debug",
        "normal",
        "rechenwerk2411",
    )
    held = jobs[JOBS["held"]]
    assert (held.state, held.reason, held.start_time, held.nodes) == (
        "PENDING",
        "JobHeldUser",
        None,
        (),
    )
    assert map_state(held.state).name == "PENDING"
    rq = jobs[JOBS["requeued"]]
    assert (rq.state, rq.reason, rq.requeue_count) == ("PENDING", "BeginTime", 1)
    waiting = jobs[JOBS["array"]]  # the record of the array's tasks not started yet
    assert (waiting.array_job_id, waiting.array_task_id, waiting.array_task_string) == (
        JOBS["array"],
        None,
        "1-3%1",
    )
    assert waiting.reason == "JobArrayTaskLimit"
    task0 = next(
        j for j in jobs.values() if j.array_job_id == JOBS["array"] and j.array_task_id == 0
    )
    assert task0.state == "RUNNING" and task0.job_id != JOBS["array"]
    if source == "rest":  # slurmctld still held the short jobs that had ended
        assert jobs[JOBS["fail"]].exit_code == 3
        assert jobs[JOBS["signal"]].exit_code == 128 + 9
        assert jobs[JOBS["ok"]].state == "COMPLETED" and jobs[JOBS["ok"]].exit_code == 0
        assert jobs[JOBS["ok"]].end_time is not None


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
@pytest.mark.parametrize("source", ["sacct", "rest"])
def test_accounted_jobs(fmt: ModuleType, source: str) -> None:
    if source == "sacct":
        jobs = by_id(fmt.parse_accounted_jobs(cli("sacct", fmt)))
    else:
        doc = rest("db-jobs", fmt)
        assert doc["status"] == 200
        jobs = by_id(fmt.parse_accounted_jobs(doc["body"]))
    outcome = {
        k: (jobs[JOBS[k]].state, jobs[JOBS[k]].exit_code)
        for k in ("ok", "fail", "signal", "cancelled")
    }
    assert outcome == {
        "ok": ("COMPLETED", 0),
        "fail": ("FAILED", 3),
        "signal": ("FAILED", 137),
        "cancelled": ("CANCELLED", 0),
    }
    ok = jobs[JOBS["ok"]]
    assert ok.submit_time and ok.start_time and ok.end_time
    assert ok.submit_time <= ok.start_time <= ok.end_time
    assert (ok.name, ok.account, ok.user, ok.nodes, ok.gpus) == (
        "rwp-ok",
        "root",
        "root",
        ("n2411a",),
        0,
    )
    if source == "sacct":
        run = jobs[JOBS["running"]]
        assert (run.state, run.end_time, run.exit_code, run.gpus) == ("RUNNING", None, None, 2)
        held = jobs[JOBS["held"]]
        assert (held.state, held.start_time, held.nodes, held.gpus) == ("PENDING", None, (), None)


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
def test_requeued_job_history(fmt: ModuleType) -> None:
    """``sacct -D`` and slurmdbd's REST answer list each run of a requeued job."""
    for doc in (cli("sacct-duplicates", fmt), rest("db-job-requeued", fmt)["body"]):
        (job,) = fmt.parse_accounted_jobs(doc)
        assert (job.job_id, job.state, job.requeue_count) == (JOBS["requeued"], "PENDING", 1)
        assert [r.state for r in job.earlier_runs] == ["REQUEUED"]
        assert job.earlier_runs[0].start_time is not None
    (plain,) = fmt.parse_accounted_jobs(
        {"jobs": [j for j in cli("sacct", fmt)["jobs"] if str(j["job_id"]) == JOBS["requeued"]]}
    )
    # only v0.0.42 slurmdbd records carry restart_cnt; sacct without -D shows one run
    assert plain.requeue_count == (1 if fmt is v0_0_42 else 0)


def test_requeued_job_while_its_run_is_stopped() -> None:
    """``["PENDING", "COMPLETING"]`` right after ``scontrol requeue`` (recorded by
    record_2411_requeue.py, the requeue 3 s after the start): the live ``start_time`` is
    then the requeue's time, not the stopped run's start (slurmdbd's record of the run
    has the real one), so it is not reported as a start. The backend reports the job
    still running as attempt 1 with an unknown start (the requeue counts once the run
    ended); the run's times come from slurmdbd."""
    from rechenwerk.execution.base import BackendJobState
    from rechenwerk.execution.slurm.backend import to_status

    live = rest("job-requeue-completing", v0_0_42)["body"]
    db = rest("db-job-requeue-completing", v0_0_42)["body"]
    raw_start = live["jobs"][0]["start_time"]["number"]
    (run_rec,) = db["jobs"]  # the next run has no record before it starts
    assert run_rec["time"]["start"] < raw_start == run_rec["time"]["end"]
    (job,) = v0_0_42.parse_live_jobs(live)
    assert (job.state, job.requeue_count, job.start_time, job.end_time) == (
        "COMPLETING", 1, None, None)
    st = to_status(replace(job, comment="rechenwerk:7.1"))
    assert (st.state, st.attempt, st.started_at, st.ended_at, st.requeued_runs) == (
        BackendJobState.RUNNING, 1, None, None, ())
    (run,) = v0_0_42.parse_accounted_jobs(db)
    assert (run.state, run.start_time, run.end_time) == (
        "REQUEUED",
        datetime.fromtimestamp(run_rec["time"]["start"], tz=UTC),
        datetime.fromtimestamp(raw_start, tz=UTC),
    )


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
def test_jobs_submitted_through_rest_ran_as_asked(fmt: ModuleType) -> None:
    """The REST-submitted jobs (one per format, the recorded submit-request.json) got their
    GPU (tres_per_node), comment and name; their ids came back in submit.json."""
    submitted = {
        str(fmt.parse_submit_response(rest("submit", m)["body"])): m.VERSION for m in RECORDED
    }
    for doc in (cli("sacct-finished", fmt), rest("db-jobs-finished", fmt)["body"]):
        jobs = by_id(fmt.parse_accounted_jobs(doc))
        for job_id, version in submitted.items():
            job = jobs[job_id]
            assert (job.name, job.state, job.exit_code, job.gpus, job.comment) == (
                f"rwp-rest-{version}",
                "COMPLETED",
                0,
                1,
                "rest comment",
            )
    finished = by_id(fmt.parse_accounted_jobs(cli("sacct-finished", fmt)))
    assert finished[JOBS["running"]].comment == "rwp comment"  # stored when a job ends
    assert finished[JOBS["running"]].state == "CANCELLED"


def _spec(fmt: str) -> SubmitSpec:
    return SubmitSpec(
        script="#!/bin/sh\ntrue\n",
        name=f"rwp-rest-{fmt}",
        account="root",
        partition="debug",
        time_limit_min=2,
        nodes=1,
        gpus_per_node=1,
        gpu_type="a100",
        workdir="/tmp",
        stdout="/tmp/rwparsers-%j.out",
        stderr="/tmp/rwparsers-%j.out",
        environment={"PATH": "/usr/bin:/bin", "RW_TEST": "a=b"},
        comment="rest comment",
    )


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
def test_submit(fmt: ModuleType) -> None:
    """The payload built today is the one slurmrestd accepted (without warnings)."""
    payload = fmt.submit_payload(_spec(fmt.VERSION))
    assert payload == rest("submit-request", fmt)
    assert "script" not in payload and payload["job"]["script"].startswith("#!/bin/sh")
    assert payload["job"]["environment"] == ["PATH=/usr/bin:/bin", "RW_TEST=a=b"]
    assert payload["job"]["tres_per_node"] == "gres/gpu:a100:1"
    answer = rest("submit", fmt)
    assert answer["status"] == 200 and answer["body"]["warnings"] == []
    assert int(fmt.parse_submit_response(answer["body"])) > 0
    refused = rest("submit-error", fmt)
    assert refused["status"] == 500
    with pytest.raises(BackendError, match=r"Invalid account .*\(error 2045\)"):
        fmt.parse_submit_response(refused["body"])


@pytest.mark.parametrize("fmt", RECORDED, ids=lambda m: m.VERSION)
def test_errors_nodes_and_slurmdb(fmt: ModuleType) -> None:
    unknown = rest("job-unknown", fmt)
    assert unknown["status"] == 404
    with pytest.raises(BackendError, match=r"Invalid job id specified \(error 2017\)"):
        fmt.check_errors(unknown["body"], "reading job 999999")
    fmt.check_errors(rest("ping", fmt)["body"], "ping")  # no errors: no exception
    want = [
        {
            "name": "n2411a",
            "state": "mixed",
            "gpus": 4,
            "gres_used": "gpu:a100:2(IDX:0-1)",
            "reason": None,
        },
        {
            "name": "n2411b",
            "state": "idle",
            "gpus": 4,
            "gres_used": "gpu:a100:0(IDX:N/A)",
            "reason": None,
        },
    ]
    assert fmt.parse_nodes(rest("nodes", fmt)["body"]) == want
    assert fmt.parse_nodes(cli("scontrol-show-node", fmt)) == want
    assert sorted(fmt.parse_nodes(cli("sinfo", fmt)), key=lambda n: n["name"]) == want
    accounts = fmt.parse_accounts(
        rest("accounts", fmt)["body"], rest("associations", fmt)["body"], {"root", "other"}
    )
    assert list(accounts) == ["root"]
    assert accounts["root"].users == {"root"} and accounts["root"].gpu_minutes is None
    assert accounts["root"].description == "default root account"
    assert fmt.parse_qos(rest("qos", fmt)["body"]) == {"normal": 0}
    assert fmt.parse_clusters(rest("clusters", fmt)["body"]) == ["rechenwerk2411"]


def test_account_payloads_match_what_slurmdbd_dumps() -> None:
    """slurmdbd lists an account's own association with user "" and GrpTRESMins under
    max.tres.group.minutes (recorded); the request payloads use the same shape."""
    assoc = rest("associations", v0_0_42)["body"]["associations"]
    assert {a["user"] for a in assoc} == {"", "root"}
    assert "minutes" in assoc[0]["max"]["tres"]["group"]
    own = v0_0_42.account_association_payload(
        "p1", cluster="c", gpu_minutes=600, qos=["normal"], default_qos="normal"
    )
    (a,) = own["associations"]
    assert a["user"] == "" and a["max"]["tres"]["group"]["minutes"] == [
        {"type": "gres", "name": "gpu", "count": 600}
    ]
    limited = {"associations": [{**a, "account": "p1"}]}
    accts = {"accounts": [{"name": "p1", "description": "d"}]}
    assert v0_0_42.parse_accounts(accts, limited, {"p1"})["p1"].gpu_minutes == 600
    assert v0_0_42.qos_payload("high", 10) == {
        "qos": [{"name": "high", "priority": {"set": True, "infinite": False, "number": 10}}]
    }
    assert v0_0_39.qos_payload("high", 10)["QOS"][0]["name"] == "high"


# ---------------------------------------------------------------------- v0.0.39 (derived)
DERIVED = FIXTURES / "slurm-23.02-derived"


def test_v0_0_39_derived() -> None:
    live = by_id(v0_0_39.parse_live_jobs(json.loads((DERIVED / "squeue.json").read_text())))
    assert (live["21"].state, live["21"].exit_code, live["21"].gpus) == ("FAILED", 3, 1)
    assert live["21"].end_time == datetime(2023, 6, 1, 10, 5, tzinfo=UTC)
    assert (live["22"].state, live["22"].start_time, live["22"].reason) == (
        "REQUEUED",
        None,
        "BeginTime",
    )
    acct = by_id(v0_0_39.parse_accounted_jobs(json.loads((DERIVED / "sacct.json").read_text())))
    # 23.02 reports every normal exit as SUCCESS/0, like 22.05: unknown unless COMPLETED
    assert acct["21"].exit_code is None and acct["20"].exit_code == 0
    assert acct["23"].exit_code == 128 + 9 and acct["23"].state == "FAILED"
    payload = v0_0_39.submit_payload(_spec("v0.0.39"))
    assert payload["script"].startswith("#!/bin/sh") and "script" not in payload["job"]
    assert payload["job"]["environment"] == ["PATH=/usr/bin:/bin", "RW_TEST=a=b"]


# ---------------------------------------------------------------------- value shapes
def test_numbers_and_states() -> None:
    assert num.number({"set": True, "infinite": False, "number": 5}) == 5
    assert num.number({"set": False, "infinite": False, "number": 0}) is None
    assert num.number({"set": False, "infinite": True, "number": 0}) is None
    assert num.is_infinite({"set": False, "infinite": True, "number": 0})
    assert num.number(7) == 7 and num.number(None) is None and num.number("Infinity") is None
    assert num.is_infinite("Infinity") and not num.is_infinite(3)
    assert num.timestamp({"set": True, "infinite": False, "number": 0}) is None
    assert num.job_state(["PENDING", "REQUEUED"]) == "REQUEUED"
    assert num.job_state(["RUNNING", "COMPLETING"]) == "COMPLETING"
    assert num.job_state(["CANCELLED"]) == "CANCELLED" and num.job_state([]) == "UNKNOWN"
    assert num.node_state(["IDLE", "DRAIN"]) == "idle+drain"
    assert num.exit_code({"status": ["PENDING"], "return_code": {"set": False}}) is None
    assert num.wait_status_code(768) == 3 and num.wait_status_code(9) == 137


# ---------------------------------------------------------------------- format selection
def test_release_to_format() -> None:
    recorded = versions.parse_release((REC / "cli/scontrol-version.txt").read_text())
    assert recorded == (24, 11) and versions.format_for_release(recorded) is v0_0_42
    old = versions.parse_release((FIXTURES / "slurm-22.05/scontrol-version.txt").read_text())
    assert versions.format_for_release(old) is v0_0_38
    assert versions.format_for_release((23, 2)) is v0_0_39
    assert versions.format_for_release((23, 11)) is v0_0_40
    assert versions.format_for_release((24, 5)) is v0_0_41
    with pytest.raises(BackendError, match=r"Slurm 25\.05 is not supported") as exc:
        versions.format_for_release(versions.parse_release("slurm 25.05.1"))
    assert "24.11 (v0.0.42)" in str(exc.value) and "22.05 (v0.0.38)" in str(exc.value)
    with pytest.raises(BackendError, match="cannot read a Slurm release"):
        versions.parse_release("command not found")
    with pytest.raises(InvalidInput, match=r"v0\.0\.43"):
        versions.format_by_name("v0.0.43")


def test_slurmrestd_offer_to_format() -> None:
    offered = versions.offered_by_openapi(load("rest/openapi-v3-paths.json"))
    assert offered == ["v0.0.40", "v0.0.41", "v0.0.42"]
    assert versions.newest_common(offered, where="24.11") is v0_0_42
    old = versions.offered_by_openapi(
        json.loads((FIXTURES / "slurm-22.05/openapi-v3-paths.json").read_text())
    )
    assert old == ["v0.0.36", "v0.0.37", "v0.0.38"]
    assert versions.newest_common(old, where="22.05") is v0_0_38
    with pytest.raises(BackendError, match=r"offers the Slurm data formats v0.0.43, v0.0.44;"):
        versions.newest_common(["v0.0.43", "v0.0.44"], where="slurmrestd at x")
    current = versions.offered_by_openapi(
        json.loads((FIXTURES / "slurm-26.05/openapi-v3-paths.json").read_text()))
    assert current == ["v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"]
    assert versions.newest_common(current, where="26.05") is v0_0_42


def test_module_interface_is_complete() -> None:
    names = {n for n in dir(v0_0_38) if not n.startswith("_")}
    names -= {
        "annotations",
        "Any",
        "Mapping",
        "BackendError",
        "SlurmAccount",
        "SlurmJob",
        "SubmitSpec",
        "UTC",
        "datetime",
        "replace",
        "expand_hostlist",
    }
    for mod in (v0_0_39, v0_0_40, v0_0_41, v0_0_42):
        assert names <= set(dir(mod)), (mod.VERSION, names - set(dir(mod)))
        assert all(
            getattr(mod, p).startswith(("/slurm/", "/slurmdb/")) and mod.VERSION in getattr(mod, p)
            for p in dir(mod)
            if p.startswith("PATH_") and getattr(mod, p) is not None  # None: no such endpoint
        )
    add_cond = {"account_add_cond_payload", "user_add_cond_payload", "own_association",
                "account_limit_payload"}
    for mod in (v0_0_40, v0_0_41, v0_0_42):  # what their PATH_DB_*_ASSOCIATION need
        assert mod.PATH_DB_ACCOUNTS_ASSOCIATION and add_cond <= set(dir(mod)), mod.VERSION


# ---------------------------------------------------------------------- transports choose
def _fake_slurm(bin_dir: Path, release: str,
                offered: tuple[str, ...] = ("v0.0.42", "v0.0.40", "v0.0.41")) -> Path:
    """``scontrol version`` printing ``release``; ``squeue``/``sacct`` print the recorded
    24.11 output of the format their ``--json[=<format>]`` asks for (and log their argv),
    and ``offered`` for ``--json=list`` as Slurm does."""
    log = bin_dir / "argv.log"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "{release}"\n')
    listing = "".join(f"data_parser/{v}\\n" for v in offered)
    for cmd in ("squeue", "sacct"):
        (bin_dir / cmd).write_text(
            "#!/bin/sh\n"
            f'echo "{cmd} $*" >> {log}\n'
            f'if [ "$1" = --json=list ]; then printf "Possible data_parser plugins:\\n{listing}"; '
            "exit 0; fi\n"
            'fmt=v0.0.42\ncase "$1" in --json=*) fmt="${1#--json=}";; esac\n'
            f'exec cat "{REC}/cli/{cmd}-$fmt.json"\n'
        )
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    return log


def test_cli_transport_reads_the_release_format(tmp_path: Path) -> None:
    from rechenwerk.execution.slurm.cli_transport import CliTransport

    log = _fake_slurm(tmp_path, "slurm-wlm 24.11.5")
    t = CliTransport(bin_dir=str(tmp_path))
    jobs = by_id(t.live_jobs())
    assert jobs[JOBS["running"]].gpus == 2 and t.schema is v0_0_42
    assert by_id(t.accounted_jobs(job_ids=[JOBS["fail"]]))[JOBS["fail"]].exit_code == 3
    assert log.read_text().splitlines()[0] == "squeue --json"
    # an operator's older format: 24.11's commands print it when asked
    pinned = CliTransport(bin_dir=str(tmp_path), data_format="v0.0.40")
    assert by_id(pinned.live_jobs())[JOBS["held"]].reason == "JobHeldUser"
    assert pinned.schema is v0_0_40 and "squeue --json=v0.0.40" in log.read_text()


def test_cli_transport_speaks_a_newer_release_in_the_newest_format_both_know(
        tmp_path: Path) -> None:
    """Slurm 26.05's commands print v0.0.45 by default but still offer v0.0.42
    (``--json=list``, as recorded from Debian's 26.05.5): Rechenwerk asks for that one."""
    from rechenwerk.execution.slurm.cli_transport import CliTransport

    recorded = FIXTURES / "slurm-26.05/cli"
    offered = tuple(versions.offered_by_json_list((recorded / "squeue-json-list.txt")
                                                  .read_text()))
    assert offered == ("v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45")
    log = _fake_slurm(tmp_path, (recorded / "scontrol-version.txt").read_text().strip(),
                      offered=offered)
    t = CliTransport(bin_dir=str(tmp_path))
    assert by_id(t.live_jobs())[JOBS["running"]].gpus == 2 and t.schema is v0_0_42
    assert log.read_text().splitlines() == ["squeue --json=list", "squeue --json=v0.0.42"]


def test_cli_transport_refuses_unknown_releases(tmp_path: Path) -> None:
    from rechenwerk.execution.slurm.cli_transport import CliTransport

    _fake_slurm(tmp_path, "slurm 27.11.1", offered=("v0.0.45", "v0.0.46", "v0.0.47"))
    with pytest.raises(BackendError, match=r"offers the Slurm data formats v0\.0\.45, "
                       r"v0\.0\.46, v0\.0\.47; Rechenwerk supports v0\.0\.38") as exc:
        CliTransport(bin_dir=str(tmp_path)).live_jobs()
    assert "Slurm 27.11's commands" in str(exc.value)
    _fake_slurm(tmp_path, "slurm 21.08.8")  # older than --json=<format>: no way to ask
    with pytest.raises(BackendError, match=r"Slurm 21\.08 is not supported"):
        CliTransport(bin_dir=str(tmp_path)).live_jobs()
    _fake_slurm(tmp_path, "slurm-wlm 22.05.8")
    with pytest.raises(BackendError, match=r"prints only its own JSON format \(v0\.0\.38\)"):
        CliTransport(bin_dir=str(tmp_path), data_format="v0.0.42").live_jobs()


def test_rest_transport_asks_slurmrestd_once() -> None:
    import httpx

    from rechenwerk.execution.slurm.rest_transport import RestTransport

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/openapi/v3":
            return httpx.Response(200, json=load("rest/openapi-v3-paths.json"))
        version = request.url.path.split("/")[2]
        return httpx.Response(200, json=load(f"rest/{version}/jobs.json")["body"])

    t = RestTransport("unix:/nonexistent.sock")
    t._client = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://x")
    assert by_id(t.live_jobs())[JOBS["running"]].gpus == 2
    t.live_jobs()
    assert asked == ["/openapi/v3", "/slurm/v0.0.42/jobs", "/slurm/v0.0.42/jobs"]
    pinned = RestTransport("unix:/nonexistent.sock", api_version="v0.0.40")
    pinned._client = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://x")
    asked.clear()
    assert by_id(pinned.live_jobs())[JOBS["held"]].state == "PENDING"
    assert asked == ["/slurm/v0.0.40/jobs"]


@pytest.mark.parametrize("newer", ["v0.0.43", "v0.0.44", "v0.0.45"])
def test_26_05s_newer_formats_read_as_v0_0_42_does(newer: str) -> None:
    """Recorded from Slurm 26.05.5 (the same jobs and nodes in each format): the formats
    after v0.0.42 only add fields, so what Rechenwerk reads of them is unchanged and
    v0.0.42, which 26.05 still prints, loses nothing."""
    rec = FIXTURES / "slurm-26.05/cli"

    def read(name: str) -> Any:
        return json.loads((rec / name).read_text())

    base = v0_0_42.parse_accounted_jobs(read("sacct-v0.0.42.json"))
    assert {j.state for j in base} >= {"COMPLETED", "CANCELLED", "FAILED"}
    assert v0_0_42.parse_accounted_jobs(read(f"sacct-{newer}.json")) == base
    nodes = v0_0_42.parse_nodes(read("sinfo-v0.0.42.json"))
    assert len(nodes) == 2 and v0_0_42.parse_nodes(read(f"sinfo-{newer}.json")) == nodes
