"""Slurm's OpenAPI data_parser v0.0.38 (Slurm 22.05): the ONLY module that knows this
JSON. ``squeue --json`` and ``GET /slurm/v0.0.38/jobs`` share the live-job schema;
``sacct --json`` and ``GET /slurmdb/v0.0.38/jobs`` share the accounting schema.

A newer Slurm (v0.0.39+, e.g. ``environment`` as a list, numbers wrapped in
``{"set", "infinite", "number"}``) gets its own module with the same four functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from rechenwerk.errors import BackendError
from rechenwerk.execution.slurm import data_parser as dp
from rechenwerk.execution.slurm.energy import consumed_energy_j as _consumed_energy_j
from rechenwerk.execution.slurm.hostlist import expand_hostlist
from rechenwerk.execution.slurm.types import SlurmAccount, SlurmJob, SubmitSpec

VERSION = "v0.0.38"
PATH_PING = "/slurm/v0.0.38/ping"
PATH_SUBMIT = "/slurm/v0.0.38/job/submit"
PATH_JOBS = "/slurm/v0.0.38/jobs"
PATH_JOB = "/slurm/v0.0.38/job/{job_id}"
PATH_DB_JOBS = "/slurmdb/v0.0.38/jobs"
PATH_DB_JOB = "/slurmdb/v0.0.38/job/{job_id}"
PATH_DB_ACCOUNTS = "/slurmdb/v0.0.38/accounts"
PATH_DB_ASSOCIATIONS = "/slurmdb/v0.0.38/associations"
PATH_DB_ASSOCIATION = "/slurmdb/v0.0.38/association"  # DELETE ?account=&user=&cluster=
PATH_DB_QOS = "/slurmdb/v0.0.38/qos"
PATH_DB_CLUSTERS = "/slurmdb/v0.0.38/clusters"
# no add-with-condition endpoints: accounts and users are added as association records
PATH_DB_ACCOUNTS_ASSOCIATION: str | None = None
PATH_DB_USERS_ASSOCIATION: str | None = None
# GrpTRESMins of an existing account through sacctmgr (22.05.8 ignored the change)
REST_LIMIT_CHANGE = False


def _time(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _reason(value: Any) -> str | None:
    if not value or value == "None":
        return None
    return str(value)


def gpus_from_tres(tres: str | None) -> int | None:
    """``"cpu=1,mem=512M,node=1,billing=1,gres/gpu=2"`` -> 2 (untyped total)."""
    if not tres:
        return None
    typed = 0
    for item in tres.split(","):
        key, _, val = item.partition("=")
        if key == "gres/gpu":
            return int(val)
        if key.startswith("gres/gpu:"):
            typed += int(val)
    return typed or 0


def _wait_status_to_code(status: Any) -> int | None:
    """Live jobs carry the raw wait(2) status: exit 3 -> 768, SIGKILL -> 9."""
    if not isinstance(status, int):
        return None
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF


# ESLURM_REST_EMPTY_RESULT: "Nothing found with query" is an empty answer, not a failure
_EMPTY_RESULT = 9003


def check_errors(doc: Mapping[str, Any], what: str) -> None:
    errors = [
        e
        for e in doc.get("errors") or []
        if not (isinstance(e, Mapping) and e.get("error_number") == _EMPTY_RESULT)
    ]
    if errors:
        first = errors[0] if isinstance(errors[0], Mapping) else {"description": str(errors[0])}
        desc = first.get("description") or first.get("error") or "unknown error"
        code = first.get("error_number") or first.get("errno")
        raise BackendError(
            f"Slurm refused {what}: {desc}" + (f" (error {code})" if code else ""),
            hint="Check the request against `sinfo`/`sacctmgr show assoc`; "
            "`rechenwerk slurm sync` creates missing accounts and associations.",
        )


def parse_live_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``squeue --json`` / ``GET /slurm/v0.0.38/jobs`` -> jobs."""
    out: list[SlurmJob] = []
    for j in doc.get("jobs") or []:
        state = str(j.get("job_state") or "UNKNOWN")
        started = _time(j.get("start_time"))
        pending = state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING")
        out.append(
            SlurmJob(
                job_id=str(j["job_id"]),
                state=state,
                name=str(j.get("name") or ""),
                account=str(j.get("account") or ""),
                user=str(j.get("user_name") or ""),
                partition=str(j.get("partition") or ""),
                qos=str(j.get("qos") or ""),
                reason=_reason(j.get("state_reason")),
                submit_time=_time(j.get("submit_time")),
                # a pending job's start_time is Slurm's *expected* start: not a fact
                start_time=None if pending else started,
                end_time=None if pending or state == "RUNNING" else _time(j.get("end_time")),
                exit_code=None if pending else _wait_status_to_code(j.get("exit_code")),
                gpus=None if pending else gpus_from_tres(j.get("tres_alloc_str")),
                nodes=() if pending else expand_hostlist(j.get("nodes")),
                requeue_count=int(j.get("restart_cnt") or 0),
                comment=str(j.get("comment") or ""),
                cluster=str(j.get("cluster") or ""),
                **_live_array(j),
            )
        )
    return out


def _live_array(j: Mapping[str, Any]) -> dict[str, Any]:
    """squeue's array fields: ``array_job_id`` (0 when not an array), ``array_task_id``
    (None for the record of tasks not started yet) and ``array_task_string``."""
    aid = j.get("array_job_id")
    if not isinstance(aid, int) or aid <= 0:
        return {}
    tid = j.get("array_task_id")
    return {"array_job_id": str(aid), "array_task_id": tid if isinstance(tid, int) else None,
            "array_task_string": str(j.get("array_task_string") or "")}


def _db_array(j: Mapping[str, Any]) -> dict[str, Any]:
    """sacct's ``array`` object: ``{"job_id": 67, "task_id": 0, ...}`` (job_id 0: none)."""
    arr = j.get("array") or {}
    aid = arr.get("job_id") if isinstance(arr, Mapping) else None
    if not isinstance(aid, int) or aid <= 0:
        return {}
    tid = arr.get("task_id")
    return {"array_job_id": str(aid), "array_task_id": tid if isinstance(tid, int) else None}


def _db_gpus(tres: Mapping[str, Any] | None) -> int | None:
    if not tres:
        return None
    total_typed = 0
    for t in tres.get("allocated") or []:
        if t.get("type") == "gres" and t.get("name") == "gpu":
            return int(t.get("count") or 0)
        if t.get("type") == "gres" and str(t.get("name") or "").startswith("gpu:"):
            total_typed += int(t.get("count") or 0)
    return total_typed


def parse_accounted_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``sacct --json`` / ``GET /slurmdb/v0.0.38/jobs`` -> one record per job allocation.

    22.05.8 quirks: a requeued job appears once per run (like ``sacct --duplicates``), in
    chronological order; its latest run is returned, with the earlier ones (state
    REQUEUED, NODE_FAIL, PREEMPTED) in ``earlier_runs`` and their number in
    ``requeue_count``. ``exit_code`` is reported as
    ``{"status": "SUCCESS", "return_code": 0}`` even for failed jobs; a zero code for a
    job that did not complete is reported as unknown (None); the CLI transport fills it
    from ``sacct --parsable2``.
    """
    out: list[SlurmJob] = []
    for j in doc.get("jobs") or []:
        state_obj = j.get("state") or {}
        state = str(state_obj.get("current") or "UNKNOWN")
        t = j.get("time") or {}
        ec = j.get("exit_code") or {}
        code: int | None = ec.get("return_code") if isinstance(ec, Mapping) else None
        if ec.get("status") == "SIGNALED" and isinstance(ec.get("signal"), Mapping):
            code = 128 + int(ec["signal"].get("signal_id") or 0)
        if state in ("PENDING", "RUNNING") or (code == 0 and state != "COMPLETED"):
            code = None
        started = _time(t.get("start"))
        assoc = j.get("association") or {}
        out.append(
            SlurmJob(
                job_id=str(j["job_id"]),
                state=state,
                name=str(j.get("name") or ""),
                account=str(j.get("account") or assoc.get("account") or ""),
                user=str(j.get("user") or assoc.get("user") or ""),
                partition=str(j.get("partition") or ""),
                qos=str(j.get("qos") or ""),
                reason=_reason(state_obj.get("reason")),
                submit_time=_time(t.get("submission")),
                start_time=started,
                end_time=_time(t.get("end")),
                exit_code=code,
                gpus=_db_gpus(j.get("tres")) if started else None,
                consumed_energy_j=_consumed_energy_j(j) if started else None,
                nodes=expand_hostlist(j.get("nodes")) if started else (),
                comment=str((j.get("comment") or {}).get("job") or ""),
                time_limit_min=dp.db_time_limit(t.get("limit")),
                gpu_type=dp.db_gpu_type(j.get("tres")) if started else None,
                cluster=str(j.get("cluster") or ""),
                **_db_array(j),
            )
        )
    runs: dict[str, list[SlurmJob]] = {}
    for job in out:  # later runs of the same job id come later (chronological)
        runs.setdefault(job.job_id, []).append(job)
    return [
        replace(r[-1], requeue_count=len(r) - 1, earlier_runs=tuple(r[:-1])) if len(r) > 1
        else r[0]
        for r in runs.values()
    ]


def submit_payload(spec: SubmitSpec) -> dict[str, Any]:
    """``POST /slurm/v0.0.38/job/submit`` body."""
    job: dict[str, Any] = {
        "name": spec.name,
        "account": spec.account,
        "partition": spec.partition,
        "time_limit": spec.time_limit_min,
        "nodes": [spec.nodes, spec.nodes],
        "tasks_per_node": spec.ntasks_per_node,
        "tasks": spec.ntasks_per_node * spec.nodes,
        "current_working_directory": spec.workdir,
        "standard_output": spec.stdout,
        "standard_error": spec.stderr,
        "environment": dict(spec.environment) or {"PATH": "/usr/bin:/bin"},
        "requeue": True,
    }
    if spec.gres:
        job["gres"] = spec.gres
    if spec.qos:
        job["qos"] = spec.qos
    if spec.reservation:
        job["reservation"] = spec.reservation
    if spec.comment:
        job["comment"] = spec.comment
    if spec.dependency:
        job["dependency"] = spec.dependency
    if spec.array:
        job["array"] = spec.array
    return {"script": spec.script, "job": job}


def parse_submit_response(doc: Mapping[str, Any]) -> str:
    check_errors(doc, "the job")
    job_id = doc.get("job_id")
    if not isinstance(job_id, int):
        raise BackendError(f"slurmrestd answered without a job id: {dict(doc)!r:.300}")
    return str(job_id)


def parse_nodes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``sinfo --json`` / ``GET /slurm/v0.0.38/nodes`` -> name, state, GPUs, reason."""
    out: list[dict[str, Any]] = []
    for n in doc.get("nodes") or []:
        gres = str(n.get("gres") or "")
        gpus = 0
        for item in gres.split(","):
            if item.startswith("gpu:"):
                tail = item.split("(")[0].rsplit(":", 1)[-1]
                gpus += int(tail) if tail.isdigit() else 0
        out.append(
            {
                "name": str(n.get("name") or ""),
                "state": str(n.get("state") or "").lower(),
                "gpus": gpus,
                "gres_used": str(n.get("gres_used") or ""),
                "reason": str(n.get("reason") or "") or None,
            }
        )
    return out


# ---------------------------------------------------------------------- slurmdb accounts
def _path(doc: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _gpu_count(tres: Any) -> int | None:
    """``[{"type": "gres", "name": "gpu", "count": 600}]`` -> 600; no gres/gpu -> None."""
    for t in tres or []:
        if isinstance(t, Mapping) and t.get("type") == "gres" and t.get("name") == "gpu":
            return int(t.get("count") or 0)
    return None


def gpu_minutes_tres(gpu_minutes: int) -> list[dict[str, Any]]:
    return [{"type": "gres", "name": "gpu", "count": int(gpu_minutes)}]


def parse_accounts(
    accounts_doc: Mapping[str, Any], associations_doc: Mapping[str, Any], names: set[str]
) -> dict[str, SlurmAccount]:
    """``GET /slurmdb/v0.0.38/accounts`` + ``GET .../associations?account=...`` -> the
    accounts among ``names`` that have an association (like ``sacctmgr show assoc``)."""
    limits: dict[str, int | None] = {}
    users: dict[str, set[str]] = {}
    for a in associations_doc.get("associations") or []:
        account = str(a.get("account") or "")
        if account not in names or a.get("partition"):
            continue
        user = a.get("user")
        if user:
            users.setdefault(account, set()).add(str(user))
        else:
            limits[account] = _gpu_count(_path(a, ("max", "tres", "group", "minutes")))
            users.setdefault(account, set())
    descriptions = {
        str(a.get("name")): str(a.get("description") or "")
        for a in accounts_doc.get("accounts") or []
    }
    return {
        a: SlurmAccount(a, descriptions.get(a, ""), limits.get(a), frozenset(u))
        for a, u in users.items()
    }


def account_payload(name: str, *, description: str, organization: str) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.38/accounts``: creates the account or updates its description
    (it does not create the account's association)."""
    return {"accounts": [{"name": name, "description": description,
                          "organization": organization}]}


def account_association_payload(
    name: str, *, cluster: str, gpu_minutes: int, qos: list[str], default_qos: str
) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.38/associations``: the account's own association (``user``
    null: parent root, like ``sacctmgr add account``)."""
    return {"associations": [{
        "account": name,
        "user": None,
        "cluster": cluster,
        "max": {"tres": {"group": {"minutes": gpu_minutes_tres(gpu_minutes)}}},
        "qos": qos,
        "default": {"qos": default_qos},
    }]}


def user_association_payload(user: str, account: str, *, cluster: str) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.38/associations``: slurmdbd creates the user if needed."""
    return {"associations": [{"account": account, "user": user, "cluster": cluster}]}


def parse_qos(doc: Mapping[str, Any]) -> dict[str, int]:
    """``GET /slurmdb/v0.0.38/qos`` (the list is under ``"QOS"``) -> name: priority."""
    out: dict[str, int] = {}
    for q in doc.get("QOS") or doc.get("qos") or []:
        prio = q.get("priority")
        out[str(q.get("name"))] = int(prio) if isinstance(prio, int) else 0
    return out


def qos_payload(name: str, priority: int) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.38/qos``: creates or updates the QOS by name."""
    return {"QOS": [{"name": name, "priority": int(priority)}]}


def parse_clusters(doc: Mapping[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in doc.get("clusters") or [] if c.get("name")]
