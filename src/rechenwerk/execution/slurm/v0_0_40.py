"""Slurm's data_parser v0.0.40: Slurm 23.11 (also in 24.05 and 24.11 slurmrestd). The only
module that knows this format; the shared parts live in ``data_parser`` (bound here to
``_FORMAT``).

``job_state``/``state.current``/node ``state`` are flag lists, live times and array
ids ``{set, infinite, number}``, exit codes decoded (``status`` list, ``return_code``,
``signal``). The script goes in ``job.script``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rechenwerk.execution.slurm import data_parser as dp
from rechenwerk.execution.slurm.types import SlurmJob, SubmitSpec

VERSION = "v0.0.40"
PATH_PING = "/slurm/v0.0.40/ping"
PATH_SUBMIT = "/slurm/v0.0.40/job/submit"
PATH_JOBS = "/slurm/v0.0.40/jobs"
PATH_JOB = "/slurm/v0.0.40/job/{job_id}"
PATH_NODES = "/slurm/v0.0.40/nodes"
PATH_DB_JOBS = "/slurmdb/v0.0.40/jobs"
PATH_DB_JOB = "/slurmdb/v0.0.40/job/{job_id}"
PATH_DB_ACCOUNTS = "/slurmdb/v0.0.40/accounts"
PATH_DB_ASSOCIATIONS = "/slurmdb/v0.0.40/associations"
PATH_DB_ASSOCIATION = "/slurmdb/v0.0.40/association"  # DELETE ?account=&user=&cluster=
PATH_DB_QOS = "/slurmdb/v0.0.40/qos"
PATH_DB_CLUSTERS = "/slurmdb/v0.0.40/clusters"
# adding accounts and users as sacctmgr does (data_parser.account_add_cond_payload)
PATH_DB_ACCOUNTS_ASSOCIATION: str | None = "/slurmdb/v0.0.40/accounts_association"
PATH_DB_USERS_ASSOCIATION: str | None = "/slurmdb/v0.0.40/users_association"
# POST .../associations changes an existing association's GrpTRESMins
REST_LIMIT_CHANGE = True

_FORMAT = dp.Format(
    version=VERSION,
    script_in_job=True,
    verbose_exit_codes=True,
    db_restart_cnt=False,
    qos_request_key="qos",
)

check_errors = dp.check_errors
gpus_from_tres = dp.gpus_from_tres
parse_submit_response = dp.parse_submit_response
parse_nodes = dp.parse_nodes
gpu_minutes_tres = dp.gpu_minutes_tres
parse_accounts = dp.parse_accounts
account_payload = dp.account_payload
account_association_payload = dp.account_association_payload
user_association_payload = dp.user_association_payload
parse_qos = dp.parse_qos
parse_clusters = dp.parse_clusters
account_add_cond_payload = dp.account_add_cond_payload
user_add_cond_payload = dp.user_add_cond_payload
own_association = dp.own_association
account_limit_payload = dp.account_limit_payload


def parse_live_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``squeue --json`` / ``GET /slurm/v0.0.40/jobs`` -> jobs."""
    return dp.parse_live_jobs(_FORMAT, doc)


def parse_accounted_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``sacct --json`` / ``GET /slurmdb/v0.0.40/jobs`` -> one record per job allocation."""
    return dp.parse_accounted_jobs(_FORMAT, doc)


def submit_payload(spec: SubmitSpec) -> dict[str, Any]:
    """``POST /slurm/v0.0.40/job/submit`` body."""
    return dp.submit_payload(_FORMAT, spec)


def qos_payload(name: str, priority: int) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.40/qos``: creates or updates the QOS by name."""
    return dp.qos_payload(_FORMAT, name, priority)
