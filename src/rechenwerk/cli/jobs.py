"""Job commands: submit, jobs, job show, logs [-f], cancel, balance, queue; operators:
nodes, drain, resume. Everything goes through the REST API (``cli/client.py``)."""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput
from rechenwerk.execution.gpu_use import describe_gpu_use

TERMINAL = {"completed", "failed", "cancelled", "timeout"}


def _call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def _gpu_h(value: float | None) -> str:
    """GPU-hours: small amounts (a short test job) keep four decimals so they show."""
    if value is None:
        return ""
    return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    from rechenwerk.jobs.specs import format_duration

    return format_duration(seconds)


def _time(value: str | None) -> str:
    return "" if not value else value.replace("T", " ")[:19]


def _pos(job: dict[str, Any]) -> str:
    return "-" if job.get("position") is None else str(job["position"])


def _expected(value: str | None) -> str:
    """A forecast for people: "~14:20 UTC (in 2 h 10 min)"; blank when there is none."""
    if not value:
        return ""
    from datetime import UTC, datetime

    from rechenwerk.scheduling.model import starts_in

    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = (at - datetime.now(UTC)).total_seconds()
    day = "" if delta < 20 * 3600 else at.strftime("%Y-%m-%d ")
    return f"~{day}{at.strftime('%H:%M')} UTC ({starts_in(delta)})"


def _terms(priority: dict[str, float] | None) -> list[str]:
    """Total, age, fair share, job size, QOS; blanks where the policy has no priority."""
    if not priority:
        return [""] * 5
    return [f"{priority[k]:,.1f}" for k in ("total", "age", "fairshare", "jobsize", "qos")]


def job_ref(text: str) -> tuple[int, int | None]:
    """``123`` (a job, or a whole array) or ``123_4`` (task 4 of array 123)."""
    head, sep, index = text.strip().partition("_")
    if not head.isdigit() or (sep and not index.isdigit()):
        raise InvalidInput(f"{text!r} is not a job id: use 123, or 123_4 for task 4 of "
                           "array 123", field="job")
    return int(head), int(index) if sep else None


def _job_path(text: str) -> str:
    job_id, index = job_ref(text)
    return f"/api/v1/jobs/{job_id}" + ("" if index is None else f"/tasks/{index}")


def array_states(counts: dict[str, int]) -> str:
    """``8 running, 90 pending, 2 done`` from an array's tasks per state."""
    from rechenwerk.jobs.service import describe_array_states

    return describe_array_states(counts)


def _row_id(job: dict[str, Any]) -> str:
    if job.get("array"):
        return str(job["array"]["display_id"])
    return str(job.get("display_id") or job["id"])


def load_spec_file(path: Path, overrides: dict[str, Any] | None = None,
                   after: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Read a YAML/JSON spec and validate it locally (clear errors before any request).
    ``workdir`` is resolved against the file's directory (default: that directory), so
    ``rechenwerk submit examples/train-demo.yaml`` works from anywhere."""
    from rechenwerk.jobs.spec_text import MAX_SPEC_BYTES, decode_spec_bytes, too_large
    from rechenwerk.jobs.specs import parse_spec

    if str(path) == "-":
        data = sys.stdin.buffer.read(MAX_SPEC_BYTES + 1)
        source, base = "job spec (stdin)", Path.cwd()
    else:
        if not path.is_file():
            raise InvalidInput(f"job spec file {path} does not exist",
                               hint="Give the path of a YAML or JSON job spec.")
        source, base = str(path), path.resolve().parent
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise too_large(source)
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"cannot read job spec file {path}: {exc.strerror}",
                               hint="Check the path and its permissions.") from None
    doc = decode_spec_bytes(data, source=source)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source} must be a mapping of fields (name, project, gpus ...)",
                           hint="See docs/jobs.md for the job spec format.")
    doc.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if after and any(after.values()):  # --after-ok ... add to the file's depends_on
        deps = doc.get("depends_on")
        deps = dict(deps) if isinstance(deps, dict) else {}
        for kind, ids in after.items():
            if ids:
                old = deps.get(kind)
                deps[kind] = [*(old if isinstance(old, list) else [] if old is None
                                else [old]), *ids]
        doc["depends_on"] = deps
    workdir = doc.get("workdir")
    doc["workdir"] = str((base / str(workdir)).resolve()) if workdir else str(base)
    parse_spec(doc, source=source)
    return doc


def _several_clusters(items: list[dict[str, Any]]) -> bool:
    """A cluster column only where jobs carry clusters (a centre with several)."""
    return any(j.get("cluster") or j.get("requested_cluster") for j in items)


def _cluster(j: dict[str, Any]) -> str:
    """Where the job runs; a named cluster it waits for: "beta (named)"; routed: "-"."""
    if j.get("cluster"):
        return str(j["cluster"])
    return f"{j['requested_cluster']} (named)" if j.get("requested_cluster") else "-"


def register(app: typer.Typer) -> None:
    @app.command("submit")
    @handle_errors
    def submit(
        spec: Path = typer.Argument(..., help="Job spec (YAML or JSON); '-' reads stdin."),
        project: str | None = typer.Option(None, "--project", "-p", help="Override project."),
        key: str | None = typer.Option(None, "--idempotency-key",
                                       help="Same key again returns the first job."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        cluster: str | None = typer.Option(
            None, "--cluster", help="Run on this cluster (default: the centre chooses)."),
        after_ok: list[str] = typer.Option(
            [], "--after-ok", help="Start after job(s) completed OK (repeatable, or 12,13)."),
        after_any: list[str] = typer.Option(
            [], "--after-any", help="Start after job(s) ended in any state."),
        after_not_ok: list[str] = typer.Option(
            [], "--after-not-ok", help="Start after job(s) failed, timed out or were "
            "cancelled."),
    ) -> None:
        """Submit a job from a spec file (with --after-ok etc.: a pipeline step)."""
        after = {kind: [i for item in ids for i in item.split(",") if i.strip()]
                 for kind, ids in (("after_ok", after_ok), ("after_any", after_any),
                                   ("after_not_ok", after_not_ok))}
        doc = load_spec_file(spec, {"project": project, "idempotency_key": key,
                                    "cluster": cluster}, after)
        job = _call("POST", "/api/v1/jobs", json=doc)
        if as_json:
            print_json(job)
            return
        verb = "submitted" if job.get("created", True) else "already submitted (same key)"
        qos = job["qos"] + (" (over budget: low QOS)" if job.get("over_budget") else "")
        tasks = int(job["tasks"]) if job.get("array") else 1
        commits = f"commits {_gpu_h(tasks * job['committed_gpu_hours'])} GPU-hours"
        if job.get("account_id") is not None:  # pay-per-use: money, exact decimals
            most = Decimal(job["committed_eur"]) * tasks
            commits = (f"charged to pay-per-use account {job['account_id']} at "
                       f"{job['eur_per_gpu_hour']} EUR per GPU-hour, commits up to "
                       f"{most:,.2f} EUR")
        if job.get("array"):
            console.print(f"array {job['array']['display_id']} {verb}: {tasks} tasks of "
                          f"{job['name']} in {job['project']}, {job['gpus']} GPUs each, "
                          f"walltime {_dur(job['walltime_s'])}, QOS {qos}, {commits}",
                          highlight=False)
            return
        console.print(f"job {job['id']} {verb}: {job['name']} in {job['project']}, "
                      f"{job['gpus']} GPUs, walltime {_dur(job['walltime_s'])}, QOS {qos}, "
                      f"{commits}", highlight=False)

    @app.command("jobs")
    @handle_errors
    def jobs(
        project: str | None = typer.Option(None, "--project", "-p"),
        state: list[str] = typer.Option([], "--state", "-s",
                                        help="Filter by state (repeatable or comma list)."),
        mine: bool = typer.Option(False, "--mine", help="Only my jobs."),
        limit: int = typer.Option(50, "--limit"),
        expand: bool = typer.Option(False, "--expand",
                                    help="One row per task of job arrays."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List jobs of your projects (operators: all); a job array is one row."""
        data = _call("GET", "/api/v1/jobs", params={
            "project": project, "state": ",".join(state) or None,
            "mine": "true" if mine else None, "limit": limit,
            "expand": "true" if expand else None})
        if as_json:
            print_json(data)
            return
        several = _several_clusters(data["items"])
        print_table(
            ["ID", "NAME", "PROJECT", "USER", "STATE", *(["CLUSTER"] if several else []),
             "QOS", "GPUS", "WALLTIME", "SUBMITTED", "REASON"],
            [[_row_id(j), j["name"], j["project"], j["user"],
              array_states(j["array"]["states"]) if j.get("array") else j["state"],
              *([_cluster(j)] if several else []),
              j["qos"], j["gpus"], _dur(j["walltime_s"]), _time(j["submitted_at"]),
              "" if j.get("array") else j["reason"] or ""]
             for j in data["items"]],
            title=f"{len(data['items'])} of {data['total']} jobs",
        )

    job_app = typer.Typer(help="One job.", no_args_is_help=True)
    app.add_typer(job_app, name="job")

    @job_app.command("show")
    @handle_errors
    def show(ref: str = typer.Argument(..., metavar="JOB", help="123, or 123_4 (a task)."),
             as_json: bool = typer.Option(False, "--json")) -> None:
        """A job's details and state history; an array's id lists its tasks."""
        j = _call("GET", _job_path(ref))
        job_id = j["id"]
        if as_json:
            print_json(j)
            return
        rows = [
            ("job", f"{j.get('display_id') or j['id']} {j['name']}"),
            ("project", j["project"]), ("user", j["user"]),
            ("state", j["state"] + (" (cancel requested)" if j["cancel_requested"] else "")),
            ("reason", j["reason"] or ""), ("qos", j["qos"]), ("gpus", j["gpus"]),
            ("walltime", _dur(j["walltime_s"])), ("attempt", j["attempt"]),
            ("placement", "; ".join(f"{n}:{','.join(map(str, g))}"
                                    for n, g in (j["placement"] or []))),
            ("command", " ".join(j["spec"].get("command") or []) or "(script)"),
            ("workdir", j["spec"].get("workdir", "")),
            ("submitted", _time(j["submitted_at"])), ("started", _time(j["started_at"])),
            ("ended", _time(j["ended_at"])),
            ("exit code", "" if j["exit_code"] is None else j["exit_code"]),
            ("depends on", ", ".join(
                f"{d['kind']} {d['job_id']}" + (f" ({d['state']})" if d["state"] else "")
                for d in j.get("dependencies") or [])),
            ("dependents", ", ".join(str(i) for i in j.get("dependents") or [])),
            ("GPU use", describe_gpu_use(j.get("gpu_use"))),
        ]
        if j["state"] == "pending":
            p = _call("GET", f"/api/v1/jobs/{job_id}/priority")
            total, *terms = _terms(p["priority"])
            where = (f"{p['position']} of {p['queue_length']}" if p["position"]
                     else f"not yet in the scheduler's queue ({p['queue_length']} are)")
            rows.insert(4, ("queue position", f"{where}, {p['order']}"))
            if p["priority"]:
                rows.insert(5, ("priority", f"{total} (age {terms[0]}, fair share "
                                            f"{terms[1]}, size {terms[2]}, QOS {terms[3]})"))
            rows.insert(4, ("expected start",
                            _expected(j.get("expected_start")) + " (a forecast from the "
                            "queue and recent run times)" if j.get("expected_start")
                            else "not forecast yet"))
        if j.get("array"):
            rows.insert(1, ("array", f"{j['array']['display_id']}: "
                                     f"{array_states(j['array']['states'])}"))
        print_table(["FIELD", "VALUE"], rows, title=f"job {j.get('display_id') or j['id']}")
        hint = (j.get("gpu_use") or {}).get("hint")
        if hint:
            console.print(f"[yellow]hint:[/] {hint}", highlight=False)
        if j.get("tasks"):
            print_table(["TASK", "JOB", "STATE", "EXIT", "STARTED", "ENDED", "REASON"],
                        [[t["display_id"], t["id"], t["state"],
                          "" if t["exit_code"] is None else t["exit_code"],
                          _time(t["started_at"]), _time(t["ended_at"]), t["reason"] or ""]
                         for t in j["tasks"]], title=f"{len(j['tasks'])} tasks")
        print_table(["AT", "FROM", "TO", "REASON"],
                    [[_time(e["at"]), e["from"] or "", e["to"], e["reason"] or ""]
                     for e in j["events"]], title="history")

    @app.command("logs")
    @handle_errors
    def logs(
        ref: str = typer.Argument(..., metavar="JOB", help="123, or 123_4 (a task)."),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
        stderr: bool = typer.Option(False, "--stderr", help="Show stderr instead of stdout."),
        attempt: int | None = typer.Option(None, "--attempt", help="Run number (default last)."),
        interval: float = typer.Option(1.0, "--interval", help="Seconds between polls (-f)."),
    ) -> None:
        """Print a job's output; with -f follow it until the job ends."""
        job_id, index = job_ref(ref)
        if index is not None:  # a task of an array: its own job id
            job_id = int(_call("GET", _job_path(ref))["id"])
        stream = "stderr" if stderr else "stdout"
        offset, run = 0, attempt
        while True:
            chunk = _call("GET", f"/api/v1/jobs/{job_id}/logs",
                          params={"stream": stream, "offset": offset, "attempt": run})
            if run is None and chunk["attempt"] >= 1:
                run = chunk["attempt"]
            if chunk["data"]:
                sys.stdout.write(chunk["data"])
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if (follow and attempt is None and run is not None and not chunk["data"]
                    and chunk["latest_attempt"] > run):
                run, offset = chunk["latest_attempt"], 0  # requeued: follow the new run
                sys.stderr.write(f"[job {job_id}: attempt {run}]\n")
                continue
            if not follow or chunk["complete"]:
                if follow and chunk["state"] in TERMINAL:
                    sys.stderr.write(f"[job {job_id} {chunk['state']}]\n")
                return
            if chunk["data"]:
                continue  # more may be ready right away
            time.sleep(interval)

    @app.command("cancel")
    @handle_errors
    def cancel(job_ids: list[str] = typer.Argument(
            ..., help="Job id(s); an array's id cancels all its tasks, 123_4 one task.")
               ) -> None:
        """Cancel jobs (running ones get SIGTERM, a grace period, then SIGKILL)."""
        for ref in job_ids:
            j = _call("POST", _job_path(ref) + "/cancel")
            if j.get("array") and job_ref(ref)[1] is None:
                console.print(f"array {j['array']['display_id']}: cancelled "
                              f"({array_states(j['array']['states'])})", highlight=False)
                continue
            what = "cancelled" if j["state"] == "cancelled" else "cancel requested"
            console.print(f"job {ref}: {what}", highlight=False)

    @app.command("balance")
    @handle_errors
    def balance(project: str, as_json: bool = typer.Option(False, "--json")) -> None:
        """A project's live GPU-hour balance per award period."""
        b = _call("GET", f"/api/v1/projects/{project}/balance")
        if as_json:
            print_json(b)
            return
        rows = [[p["award_period_id"], p["gpu_type"], _time(p["starts_at"])[:10],
                 _time(p["ends_at"])[:10], _gpu_h(p["awarded_gpu_hours"]),
                 _gpu_h(p["settled_gpu_hours"]), _gpu_h(p["committed_gpu_hours"]),
                 _gpu_h(p["available_gpu_hours"])] for p in b["periods"]]
        rows.append(["total", "", "", "", _gpu_h(b["awarded_gpu_hours"]),
                     _gpu_h(b["settled_gpu_hours"]), _gpu_h(b["committed_gpu_hours"]),
                     _gpu_h(b["available_gpu_hours"])])
        print_table(["PERIOD", "GPU TYPE", "FROM", "TO", "AWARDED GPU-h", "USED GPU-h",
                     "COMMITTED GPU-h", "AVAILABLE GPU-h"], rows,
                    title=f"balance of {b['project']}")
        if b["expired_award"]:
            console.print("[yellow]the project's awards have expired[/]")

    @app.command("queue")
    @handle_errors
    def queue(project: str | None = typer.Option(None, "--project", "-p"),
              factors: bool = typer.Option(False, "--priority",
                                           help="Show each priority term (as sprio)."),
              as_json: bool = typer.Option(False, "--json")) -> None:
        """Pending jobs in the order the scheduler considers them, each with its priority
        and why it waits (# counts every pending job of the centre)."""
        data = _call("GET", "/api/v1/queue", params={"project": project})
        if as_json:
            print_json(data)
            return
        title = (f"{data['total']} pending jobs of {data['queue_length']} in the centre, "
                 f"{data['order']}")
        if data.get("as_of"):  # the scheduler cycle's order (older servers: no as_of)
            title += f", order as of {data['as_of'][11:19]} UTC"
        if factors:
            print_table(["#", "ID", "PROJECT", "USER", "PRIORITY", "AGE", "FAIRSHARE",
                         "JOBSIZE", "QOS"],
                        [[_pos(j), j["id"], j["project"], j["user"],
                          *_terms(j["priority"])] for j in data["items"]],
                        title=title)
            return
        several = _several_clusters(data["items"])
        print_table(["#", "ID", "NAME", "PROJECT", "USER", *(["CLUSTER"] if several else []),
                     "QOS", "GPUS", "WALLTIME", "WAITING",
                     "PRIORITY", "EXPECTED START", "REASON"],
                    [[_pos(j), j["id"], j["name"], j["project"], j["user"],
                      *([_cluster(j)] if several else []), j["qos"], j["gpus"],
                      _dur(j["walltime_s"]), _time(j["submitted_at"]),
                      _terms(j["priority"])[0], _expected(j.get("expected_start")),
                      f"{j['reason_code'] or ''}: {j['reason'] or ''}"]
                     for j in data["items"]],
                    title=title)
        if any(j.get("expected_start") for j in data["items"]):
            console.print("expected starts assume jobs run the share of their walltime "
                          "their project's recent jobs ran (else to their walltime limit)",
                          style="dim", highlight=False)

    @app.command("clusters")
    @handle_errors
    def clusters(check: bool = typer.Option(True, "--check/--no-check",
                                            help="Operators: ask each cluster now."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
        """The centre's clusters; for operators, whether each answers (and why not)."""
        data = _call("GET", "/api/v1/clusters", params={"check": "true" if check else None})
        if as_json:
            print_json(data)
            return
        items = data["items"]
        operator = any("available" in c for c in items)
        print_table(
            ["CLUSTER", "EXECUTOR", "GPU TYPES", "PARTITIONS",
             *(["STATE", "SINCE", "REASON"] if operator else [])],
            [[c["name"], c["executor"], ", ".join(c["gpu_types"] or ["any"]),
              ", ".join(c["partitions"]),
              *([("available" if c["available"] else "UNAVAILABLE"),
                 _time(c["since"]), c["reason"] or ""] if operator else [])]
             for c in items],
            title=f"{len(items)} cluster{'s' if len(items) != 1 else ''}")

    @app.command("nodes")
    @handle_errors
    def nodes(as_json: bool = typer.Option(False, "--json")) -> None:
        """GPU usage per node (operators)."""
        data = _call("GET", "/api/v1/nodes")
        if as_json:
            print_json(data)
            return
        print_table(["NODE", "GPU TYPE", "GPUS", "USED", "STATE", "JOBS", "NOTE"],
                    [[n["name"], n["gpu_type"], n["gpus"], n["used_gpus"], n["state"],
                      ",".join(map(str, n["jobs"])), n["drain_reason"] or ""]
                     for n in data["items"]],
                    title=f"{data['used_gpus']} of {data['total_gpus']} GPUs in use")

    @app.command("drain")
    @handle_errors
    def drain(node: str, reason: str | None = typer.Option(None, "--reason", "-r")) -> None:
        """Drain a node: running jobs finish, nothing new starts there (operators)."""
        n = _call("POST", f"/api/v1/nodes/{node}/drain", json={"reason": reason})
        console.print(f"node {n['name']} drained ({len(n['jobs'])} job(s) still running)",
                      highlight=False)

    @app.command("resume")
    @handle_errors
    def resume(node: str) -> None:
        """Return a drained node to service (operators)."""
        n = _call("POST", f"/api/v1/nodes/{node}/resume")
        console.print(f"node {n['name']} resumed ({n['state']})", highlight=False)
