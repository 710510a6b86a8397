"""The parts of Slurm's data_parser formats v0.0.39+ that did not change between them.

Each version module (``v0_0_39.py`` ... ``v0_0_42.py``) owns its format: its paths and a
``Format`` naming the few places where versions differ; it binds these functions to it.
Field shapes are from SchedMD's ``src/plugins/data_parser/v0.0.4x/parsers.c``; value
shapes (``{"set", "infinite", "number"}``, flag lists) are in ``slurm_numbers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rechenwerk.errors import BackendError
from rechenwerk.execution.slurm import slurm_numbers as num
from rechenwerk.execution.slurm.energy import consumed_energy_j
from rechenwerk.execution.slurm.hostlist import expand_hostlist
from rechenwerk.execution.slurm.types import SlurmAccount, SlurmJob, SubmitSpec


@dataclass(frozen=True, slots=True)
class Format:
    version: str
    # v0.0.39 takes the batch script beside "job"; v0.0.41+ deprecate that for job.script
    script_in_job: bool
    # v0.0.39 dumps a job's exit code as wait(2) status (live) or, in slurmdbd records,
    # as {"status": "SUCCESS", "return_code": 0} for every normal exit (as v0.0.38 did);
    # v0.0.40+ decode it into {"status": [..], "return_code": .., "signal": {..}}
    verbose_exit_codes: bool
    # slurmdbd job records carry restart_cnt from v0.0.42 on
    db_restart_cnt: bool
    # POST /slurmdb/.../qos: v0.0.39 reads the list under "QOS", v0.0.40+ under "qos"
    qos_request_key: str


_PENDING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING")
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
        if first.get("description") and first.get("error") and first["error"] not in desc:
            desc = f"{desc}: {first['error']}"
        code = first.get("error_number")
        raise BackendError(
            f"Slurm refused {what}: {desc}" + (f" (error {code})" if code else ""),
            hint="Check the request against `sinfo`/`sacctmgr show assoc`; "
            "`rechenwerk slurm sync` creates missing accounts and associations.",
        )


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


def gpus_in_gres(gres: str) -> int:
    """``"gpu:2(S:0-1)"`` / ``"gpu:a100:2,gpu:h100:1"`` -> total GPUs."""
    gpus = 0
    for item in gres.split(","):
        if item.startswith("gpu:") or item == "gpu":
            tail = item.split("(")[0].rsplit(":", 1)[-1]
            gpus += int(tail) if tail.isdigit() else 0
    return gpus


def _reason(value: Any) -> str | None:
    if not value or value == "None":
        return None
    return str(value)


def _live_exit(fmt: Format, value: Any) -> int | None:
    return num.exit_code(value) if fmt.verbose_exit_codes else num.wait_status_code(value)


def parse_live_jobs(fmt: Format, doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``squeue --json`` / ``GET /slurm/<v>/jobs`` (``job_state`` a flag list from
    v0.0.40; times and array ids ``*_NO_VAL`` numbers; v0.0.39: plain times)."""
    out: list[SlurmJob] = []
    for j in doc.get("jobs") or []:
        state = num.job_state(j.get("job_state"))
        pending = state in _PENDING or num.base_job_state(j.get("job_state")) == "PENDING"
        aid = num.number(j.get("array_job_id"))
        array: dict[str, Any] = {}
        if aid:
            array = {
                "array_job_id": str(aid),
                "array_task_id": num.number(j.get("array_task_id")),
                "array_task_string": str(j.get("array_task_string") or ""),
            }
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
                submit_time=num.timestamp(j.get("submit_time")),
                # a pending job's start_time is Slurm's *expected* start: not a fact
                start_time=None if pending else num.timestamp(j.get("start_time")),
                end_time=None
                if pending or state == "RUNNING"
                else num.timestamp(j.get("end_time")),
                exit_code=None
                if pending or state == "RUNNING"
                else _live_exit(fmt, j.get("exit_code")),
                gpus=None if pending else gpus_from_tres(j.get("tres_alloc_str")),
                nodes=() if pending else expand_hostlist(j.get("nodes")),
                requeue_count=num.number(j.get("restart_cnt")) or 0,
                comment=str(j.get("comment") or ""),
                cluster=str(j.get("cluster") or ""),
                **array,
            )
        )
    return out


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


def db_gpu_type(tres: Mapping[str, Any] | None) -> str | None:
    """The first typed GPU of a slurmdbd record's allocated TRES (``gres`` ``gpu:a100``)
    -> ``"a100"``; untyped or no GPUs -> None (the same shape in every format)."""
    for t in (tres or {}).get("allocated") or []:
        name = str(t.get("name") or "") if isinstance(t, Mapping) else ""
        if t.get("type") == "gres" and name.startswith("gpu:") and int(t.get("count") or 0):
            return name.removeprefix("gpu:") or None
    return None


# a time limit at or above NO_VAL/INFINITE (0xfffffffe) is "none", in any format
_NO_LIMIT = 0xFFFFFFFE


def db_time_limit(value: Any) -> int | None:
    """slurmdbd ``time.limit`` (minutes: a plain number in v0.0.38, ``*_NO_VAL`` from
    v0.0.39) -> minutes; unset, infinite or 0 -> None."""
    minutes = num.number(value)
    return minutes if minutes and 0 < minutes < _NO_LIMIT else None


def _db_exit(fmt: Format, state: str, value: Any) -> int | None:
    if state in ("PENDING", "RUNNING"):
        return None
    if fmt.verbose_exit_codes:
        return num.exit_code(value)
    # v0.0.39: like v0.0.38, every normal exit reads {"status": "SUCCESS", 0}
    if not isinstance(value, Mapping):
        return None
    if value.get("status") == "SIGNALED" and isinstance(value.get("signal"), Mapping):
        return 128 + int(value["signal"].get("signal_id") or 0)
    code = num.number(value.get("return_code"))
    return None if code == 0 and state != "COMPLETED" else code


def parse_accounted_jobs(fmt: Format, doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``sacct --json`` / ``GET /slurmdb/<v>/jobs`` -> one record per job allocation
    (``state.current`` a flag list from v0.0.40; times plain UNIX seconds).

    A requeued job may appear once per run (``sacct --duplicates``), oldest first: its
    latest run is returned, the earlier ones in ``earlier_runs``."""
    out: list[SlurmJob] = []
    for j in doc.get("jobs") or []:
        state_obj = j.get("state") or {}
        state = num.job_state(state_obj.get("current"))
        t = j.get("time") or {}
        started = num.timestamp(t.get("start"))
        assoc = j.get("association") or {}
        arr = j.get("array") or {}
        aid = num.number(arr.get("job_id")) if isinstance(arr, Mapping) else None
        array: dict[str, Any] = {}
        if aid:
            array = {"array_job_id": str(aid), "array_task_id": num.number(arr.get("task_id"))}
        restarts = num.number(j.get("restart_cnt")) if fmt.db_restart_cnt else None
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
                submit_time=num.timestamp(t.get("submission")),
                start_time=started,
                end_time=num.timestamp(t.get("end")),
                exit_code=_db_exit(fmt, state, j.get("exit_code")),
                gpus=_db_gpus(j.get("tres")) if started else None,
                consumed_energy_j=consumed_energy_j(j) if started else None,
                nodes=expand_hostlist(j.get("nodes")) if started else (),
                requeue_count=restarts or 0,
                time_limit_min=db_time_limit(t.get("limit")),
                gpu_type=db_gpu_type(j.get("tres")) if started else None,
                comment=str((j.get("comment") or {}).get("job") or ""),
                cluster=str(j.get("cluster") or ""),
                **array,
            )
        )
    runs: dict[str, list[SlurmJob]] = {}
    for job in out:  # later runs of the same job id come later (chronological)
        runs.setdefault(job.job_id, []).append(job)
    return [
        replace(
            r[-1],
            requeue_count=max(r[-1].requeue_count, len(r) - 1),
            earlier_runs=tuple(r[:-1]),
        )
        if len(r) > 1
        else r[0]
        for r in runs.values()
    ]


def submit_payload(fmt: Format, spec: SubmitSpec) -> dict[str, Any]:
    """``POST /slurm/<v>/job/submit``: the environment is a ``["K=V"]`` list and GPUs go
    in ``tres_per_node`` (``"gres/gpu:2"``, as sbatch sends ``--gres``)."""
    env = dict(spec.environment) or {"PATH": "/usr/bin:/bin"}
    job: dict[str, Any] = {
        "name": spec.name,
        "account": spec.account,
        "partition": spec.partition,
        "time_limit": num.no_val(spec.time_limit_min),
        "nodes": str(spec.nodes),  # "N": at least and at most N (sbatch -N N)
        "tasks_per_node": spec.ntasks_per_node,
        "tasks": spec.ntasks_per_node * spec.nodes,
        "current_working_directory": spec.workdir,
        "standard_output": spec.stdout,
        "standard_error": spec.stderr,
        "environment": [f"{k}={v}" for k, v in env.items()],
        "requeue": True,
    }
    if spec.gres:
        job["tres_per_node"] = f"gres/{spec.gres}"
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
    if fmt.script_in_job:
        job["script"] = spec.script
        return {"job": job}
    return {"script": spec.script, "job": job}


def parse_submit_response(doc: Mapping[str, Any]) -> str:
    check_errors(doc, "the job")
    job_id = doc.get("job_id")
    if not isinstance(job_id, int):  # v0.0.40/41 also had it under the deprecated "result"
        result = doc.get("result")
        job_id = result.get("job_id") if isinstance(result, Mapping) else None
    if not isinstance(job_id, int):
        raise BackendError(f"slurmrestd answered without a job id: {dict(doc)!r:.300}")
    return str(job_id)


def parse_nodes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``GET /slurm/<v>/nodes`` / ``scontrol show node --json`` (under ``"nodes"``) or
    ``sinfo --json`` (v0.0.40+: grouped records under ``"sinfo"``) -> name, state, GPUs,
    reason."""
    out: list[dict[str, Any]] = []
    for n in doc.get("nodes") or []:
        out.append(
            {
                "name": str(n.get("name") or ""),
                "state": num.node_state(n.get("state")),
                "gpus": gpus_in_gres(str(n.get("gres") or "")),
                "gres_used": str(n.get("gres_used") or ""),
                "reason": str(n.get("reason") or "") or None,
            }
        )
    seen = {o["name"] for o in out}
    for rec in doc.get("sinfo") or []:  # one record per partition and node state
        names = (rec.get("nodes") or {}).get("nodes") or []
        gres = rec.get("gres") or {}
        reason = (rec.get("reason") or {}).get("description")
        for name in names:
            if name in seen:  # a node in two partitions appears twice
                continue
            seen.add(name)
            out.append(
                {
                    "name": str(name),
                    "state": num.node_state((rec.get("node") or {}).get("state")),
                    "gpus": gpus_in_gres(str(gres.get("total") or "")),
                    "gres_used": str(gres.get("used") or ""),
                    "reason": str(reason or "") or None,
                }
            )
    return out


# ---------------------------------------------------------------------- slurmdb accounts
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
    """``GET .../accounts`` + ``GET .../associations?account=...`` -> the accounts among
    ``names`` that have an association (an account's own association has user ``""``)."""
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
            grp = ((a.get("max") or {}).get("tres") or {}).get("group") or {}
            limits[account] = _gpu_count(grp.get("minutes"))
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
    """``POST .../accounts``: creates the account or updates its description."""
    return {"accounts": [{"name": name, "description": description, "organization": organization}]}


def account_association_payload(
    name: str, *, cluster: str, gpu_minutes: int, qos: list[str], default_qos: str
) -> dict[str, Any]:
    """``POST .../associations``: the account's own association. ``user`` is a required
    field from v0.0.39 on; ``""`` is the account itself (parent root)."""
    return {
        "associations": [
            {
                "account": name,
                "user": "",
                "cluster": cluster,
                "max": {"tres": {"group": {"minutes": gpu_minutes_tres(gpu_minutes)}}},
                "qos": qos,
                "default": {"qos": default_qos},
            }
        ]
    }


def user_association_payload(user: str, account: str, *, cluster: str) -> dict[str, Any]:
    return {"associations": [{"account": account, "user": user, "cluster": cluster}]}


# v0.0.40+ (Slurm 23.11 on): POST .../associations adds an association only if slurmdbd
# takes it as given; an account's own one (user "") is added as a *user* association
# under that account ("no association for parent" in slurmdbd's log) while slurmrestd
# answers 200 without errors. Accounts and users are added the way sacctmgr adds them:
# a condition (accounts/users x clusters) and the association's settings
# (ASSOC_REC_SET: sacctmgr's option names, lower case). Existing associations are
# changed through POST .../associations, which slurmrestd turns into a modify of the
# differences (``_diff_assoc`` in src/slurmrestd/plugins/openapi/slurmdbd/associations.c).
def account_add_cond_payload(
    name: str,
    *,
    description: str,
    organization: str,
    cluster: str,
    gpu_minutes: int,
    qos: list[str],
    default_qos: str,
) -> dict[str, Any]:
    """``POST .../accounts_association`` (v0.0.40+, OPENAPI_ACCOUNTS_ADD_COND_RESP): the
    account and its association under root, like ``sacctmgr add account``."""
    return {
        "association_condition": {
            "accounts": [name],
            "clusters": [cluster],
            "association": {
                "grptresmins": gpu_minutes_tres(gpu_minutes),
                "qoslevel": list(qos),
                "defaultqos": default_qos,
            },
        },
        "account": {"description": description, "organization": organization},
    }


def user_add_cond_payload(user: str, account: str, *, cluster: str) -> dict[str, Any]:
    """``POST .../users_association`` (v0.0.40+, OPENAPI_USERS_ADD_COND_RESP): the user's
    association with the account, and the user if slurmdbd has none (default account:
    this one), like ``sacctmgr add user``."""
    return {
        "association_condition": {"users": [user], "accounts": [account], "clusters": [cluster]},
        "user": {},
    }


def own_association(doc: Mapping[str, Any], account: str) -> Mapping[str, Any] | None:
    """An account's own association (user ``""``, no partition) in ``GET .../associations``."""
    for a in doc.get("associations") or []:
        if a.get("account") == account and not a.get("user") and not a.get("partition"):
            own: Mapping[str, Any] = a
            return own
    return None


def account_limit_payload(
    name: str, *, cluster: str, gpu_minutes: int, current: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``POST .../associations`` (v0.0.40+): set GrpTRESMins gres/gpu of the account's own
    association. slurmrestd replaces the whole GrpTRESMins list (a TRES left out is
    removed), so the other TRES of ``current`` (its association as listed) are kept;
    fields left out of the request (QOS, other limits) stay as they are."""
    grp = (((current or {}).get("max") or {}).get("tres") or {}).get("group") or {}
    keep = [
        {"type": t.get("type"), "name": t.get("name") or "", "count": t.get("count")}
        for t in grp.get("minutes") or []
        if isinstance(t, Mapping) and not (t.get("type") == "gres" and t.get("name") == "gpu")
    ]
    return {
        "associations": [
            {
                "account": name,
                "user": "",
                "cluster": cluster,
                "max": {"tres": {"group": {"minutes": [*keep, *gpu_minutes_tres(gpu_minutes)]}}},
            }
        ]
    }


def parse_qos(doc: Mapping[str, Any]) -> dict[str, int]:
    """``GET .../qos`` (under ``"qos"``; priority a ``*_NO_VAL`` number) -> name: priority."""
    return {
        str(q.get("name")): num.number(q.get("priority")) or 0
        for q in doc.get("qos") or doc.get("QOS") or []
    }


def qos_payload(fmt: Format, name: str, priority: int) -> dict[str, Any]:
    return {fmt.qos_request_key: [{"name": name, "priority": num.no_val(priority)}]}


def parse_clusters(doc: Mapping[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in doc.get("clusters") or [] if c.get("name")]
