"""Slurm's data_parser v0.0.39: Slurm 23.02 (also in 23.11 and 24.05 slurmrestd; gone in
24.11). The only module that knows this format; the shared parts live in ``data_parser``
(bound here to ``_FORMAT``).

Derived from SchedMD's data_parser/v0.0.39 source and OpenAPI release notes, not
recorded: no 23.02 cluster was available. Live ``job_state`` is one string and live
times are plain numbers; the batch script travels beside ``job``; exit codes are
reported as v0.0.38 did (wait status live, unreliable in slurmdbd records).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rechenwerk.execution.slurm import data_parser as dp
from rechenwerk.execution.slurm.types import SlurmJob, SubmitSpec

VERSION = "v0.0.39"
PATH_PING = "/slurm/v0.0.39/ping"
PATH_SUBMIT = "/slurm/v0.0.39/job/submit"
PATH_JOBS = "/slurm/v0.0.39/jobs"
PATH_JOB = "/slurm/v0.0.39/job/{job_id}"
PATH_NODES = "/slurm/v0.0.39/nodes"
PATH_DB_JOBS = "/slurmdb/v0.0.39/jobs"
PATH_DB_JOB = "/slurmdb/v0.0.39/job/{job_id}"
PATH_DB_ACCOUNTS = "/slurmdb/v0.0.39/accounts"
PATH_DB_ASSOCIATIONS = "/slurmdb/v0.0.39/associations"
PATH_DB_ASSOCIATION = "/slurmdb/v0.0.39/association"  # DELETE ?account=&user=&cluster=
PATH_DB_QOS = "/slurmdb/v0.0.39/qos"
PATH_DB_CLUSTERS = "/slurmdb/v0.0.39/clusters"
# no add-with-condition endpoints: accounts and users are added as association records
PATH_DB_ACCOUNTS_ASSOCIATION: str | None = None
PATH_DB_USERS_ASSOCIATION: str | None = None
# GrpTRESMins of an existing account through sacctmgr (untried: no 23.02 cluster)
REST_LIMIT_CHANGE = False

_FORMAT = dp.Format(
    version=VERSION,
    script_in_job=False,
    verbose_exit_codes=False,
    db_restart_cnt=False,
    qos_request_key="QOS",
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


def parse_live_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``squeue --json`` / ``GET /slurm/v0.0.39/jobs`` -> jobs."""
    return dp.parse_live_jobs(_FORMAT, doc)


def parse_accounted_jobs(doc: Mapping[str, Any]) -> list[SlurmJob]:
    """``sacct --json`` / ``GET /slurmdb/v0.0.39/jobs`` -> one record per job allocation."""
    return dp.parse_accounted_jobs(_FORMAT, doc)


def submit_payload(spec: SubmitSpec) -> dict[str, Any]:
    """``POST /slurm/v0.0.39/job/submit`` body."""
    return dp.submit_payload(_FORMAT, spec)


def qos_payload(name: str, priority: int) -> dict[str, Any]:
    """``POST /slurmdb/v0.0.39/qos``: creates or updates the QOS by name."""
    return dp.qos_payload(_FORMAT, name, priority)
