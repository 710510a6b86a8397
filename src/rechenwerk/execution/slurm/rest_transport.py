"""Talk to Slurm through slurmrestd: a unix socket with ``rest_auth/local`` (no token;
the caller's uid is the job's user) or TCP with ``rest_auth/jwt`` (``X-SLURM-USER-NAME``
and ``X-SLURM-USER-TOKEN``; tokens from the configured one or ``scontrol token``).

The JSON schema is delegated to one data format module: the newest one both slurmrestd
(``GET /openapi/v3``, asked once) and Rechenwerk know, or the configured one
(``versions.py``).

Accounts, associations and QOS go through ``/slurmdb/<format>/...``. v0.0.38/39 add an
account and a user as association records (``POST .../associations``); v0.0.40+ (Slurm
23.11 on) add them the way sacctmgr does (``POST .../accounts_association`` and
``.../users_association``), because there ``POST .../associations`` only changes
associations reliably (an account's own new one is stored wrongly, without an error).

What has no working REST form uses ``sacctmgr`` on this host instead (like ``requeue``
uses ``scontrol``): an account's usage reset (``RawUsage=0``; every data_parser up to
v0.0.42 skips ``usage``) and, on v0.0.38/39, a change of an existing account's
GrpTRESMins (22.05.8's association update returned success without changing the limit,
and crashed slurmrestd when the association had a TRES limit the request left out;
v0.0.40+ change it through ``POST .../associations``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import ModuleType
from typing import Any

import httpx

from rechenwerk.errors import BackendError, BackendUnavailable, InvalidInput
from rechenwerk.execution.gpu_use import DEFAULT_IDLE_BELOW_PCT
from rechenwerk.execution.slurm import gpu_usage, versions
from rechenwerk.execution.slurm.types import (
    SlurmAccount,
    SlurmJob,
    SlurmNode,
    SlurmReservation,
    SubmitSpec,
    split_job_ref,
)

_NO_RESERVATIONS = (
    "slurmrestd v0.0.38 cannot create, change or delete reservations; keep reservations in "
    "sync with the CLI transport (RECHENWERK_SLURM_TRANSPORT=cli rechenwerk slurm "
    "sync-reservations) on the submit host"
)

SCHEMAS: dict[str, ModuleType] = versions.FORMATS
_TOKEN_LIFESPAN_S = 3600


class RestTransport:
    name = "rest"
    # GPU time below this utilisation counts as idle (settings.gpu_idle_below_pct)
    gpu_idle_below_pct = DEFAULT_IDLE_BELOW_PCT

    def __init__(
        self,
        url: str,
        *,
        api_version: str | None = None,
        token: str | None = None,
        token_user: str | None = None,
        timeout_s: float = 30.0,
        command_prefix: Sequence[str] = (),
    ) -> None:
        # None: ask slurmrestd on first use (``schema``)
        self._schema = versions.format_by_name(api_version) if api_version else None
        self.url = url
        self.jwt = not url.startswith("unix:")
        if url.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
            base = "http://slurmrestd"
        elif url.startswith(("http://", "https://")):
            transport = httpx.HTTPTransport()
            base = url.rstrip("/")
        else:
            raise InvalidInput(
                f"slurmrestd URL {url!r} is neither unix:/path nor http(s)://host:port",
                field="slurm_rest_url",
                hint="e.g. unix:/run/slurmrestd.sock or http://127.0.0.1:6820",
            )
        self._client = httpx.Client(transport=transport, base_url=base, timeout=timeout_s)
        self._static_token = token or None
        self._service_user = token_user or _current_user()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._cli: Any = None  # CliTransport for what v0.0.38 cannot do (requeue)
        # RECHENWERK_SLURM_COMMAND_PREFIX, for `scontrol token` and the CLI fallback
        self._command_prefix = tuple(command_prefix)
        self._cluster: str | None = None

    @property
    def schema(self) -> ModuleType:
        if self._schema is None:
            doc = self._request("GET", "/openapi/v3", what="reading slurmrestd's API list")
            self._schema = versions.newest_common(
                versions.offered_by_openapi(doc), where=f"slurmrestd at {self.url}"
            )
        return self._schema

    # ------------------------------------------------------------------ auth
    def _headers(self, user: str | None) -> dict[str, str]:
        if not self.jwt:
            return {}
        name = user or self._service_user
        if self._static_token and name == self._service_user:
            return {"X-SLURM-USER-NAME": name, "X-SLURM-USER-TOKEN": self._static_token}
        token, expires = self._tokens.get(name, ("", 0.0))
        if time.monotonic() > expires - 60:
            token = _scontrol_token(name, self._command_prefix)
            self._tokens[name] = (token, time.monotonic() + _TOKEN_LIFESPAN_S)
        return {"X-SLURM-USER-NAME": name, "X-SLURM-USER-TOKEN": token}

    def _request(
        self, method: str, path: str, *, what: str, user: str | None = None, **kw: Any
    ) -> Mapping[str, Any]:
        try:
            resp = self._client.request(method, path, headers=self._headers(user), **kw)
        except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
            raise BackendUnavailable(
                f"{what}: slurmrestd at {self.url} unreachable ({type(exc).__name__})",
                hint="Rechenwerk keeps the job pending and retries; check slurmrestd.",
            ) from exc
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if resp.status_code == 401:
            raise BackendError(
                f"{what}: slurmrestd refused the credentials (HTTP 401)",
                hint="Check RECHENWERK_SLURM_REST_TOKEN or that `scontrol token` works.",
            )
        if not isinstance(doc, dict):
            raise BackendError(f"{what}: slurmrestd answered HTTP {resp.status_code} without JSON")
        if resp.status_code >= 500 and _controller_down(doc):
            raise BackendUnavailable(
                f"{what}: slurmctld unreachable behind slurmrestd",
                hint="Rechenwerk keeps the job pending and retries; check `scontrol ping`.",
            )
        if resp.status_code >= 400 and not doc.get("errors"):
            raise BackendError(f"{what}: slurmrestd answered HTTP {resp.status_code}")
        return doc

    # ------------------------------------------------------------------ transport API
    def submit(self, spec: SubmitSpec) -> str:
        doc = self._request(
            "POST",
            self.schema.PATH_SUBMIT,
            what="submit",
            user=spec.user,
            json=self.schema.submit_payload(spec),
        )
        job_id: str = self.schema.parse_submit_response(doc)
        return job_id

    def cancel(self, job_id: str, *, signal: str | None = None) -> None:
        params = {"signal": signal} if signal else None
        doc = self._request(
            "DELETE",
            self.schema.PATH_JOB.format(job_id=_ref(job_id)),
            what="cancel",
            params=params,
        )
        errors = doc.get("errors") or []
        for err in errors:
            desc = str(err.get("description") or err.get("error") or "").lower()
            if "invalid job id" in desc or "already completing or completed" in desc:
                return
        self.schema.check_errors(doc, f"cancelling job {job_id}")

    def requeue(self, job_id: str) -> None:
        """slurmrestd v0.0.38 cannot requeue (``DELETE /job/{id}`` only cancels or
        signals; ``POST /job/{id}`` updates fields, and ``requeue`` there is the job's
        permission to be requeued, not an action). Fall back to ``scontrol requeue`` on
        this host, which needs the Slurm client and the cluster's munge key."""
        if self._cli is None:
            from rechenwerk.execution.slurm.cli_transport import CliTransport

            self._cli = CliTransport(command_prefix=self._command_prefix)
        try:
            self._cli.requeue(job_id)
        except BackendUnavailable as exc:
            if "not found on PATH" not in exc.message:
                raise
            raise BackendError(
                f"cannot requeue Slurm job {job_id}: slurmrestd v0.0.38 has no requeue "
                "and `scontrol` is not installed here",
                hint="Install the Slurm client (and the munge key) on the Rechenwerk host, "
                "or preempt through Slurm's own preemption (PreemptMode=REQUEUE).",
            ) from exc

    def live_jobs(self) -> list[SlurmJob]:
        doc = self._request("GET", self.schema.PATH_JOBS, what="list jobs")
        self.schema.check_errors(doc, "listing jobs")
        jobs: list[SlurmJob] = self.schema.parse_live_jobs(doc)
        return jobs

    def accounted_jobs(
        self,
        *,
        job_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        accounts: Sequence[str] | None = None,
    ) -> list[SlurmJob]:
        params: dict[str, str] = {}
        if start is not None:
            params["start_time"] = start.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
        if end is not None:
            params["end_time"] = end.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
        if accounts:
            params["account"] = ",".join(accounts)
        jobs: list[SlurmJob] = []
        if job_ids is not None and len(job_ids) <= 20 and not params:
            for jid in job_ids:  # a few ids: one small request each, not the whole history
                doc = self._request(
                    "GET", self.schema.PATH_DB_JOB.format(job_id=split_job_ref(jid)[0]),
                    what="accounting"
                )
                self.schema.check_errors(doc, "reading accounting")
                jobs.extend(self._with_gpu_use(self.schema.parse_accounted_jobs(doc), doc))
        else:
            doc = self._request("GET", self.schema.PATH_DB_JOBS, what="accounting", params=params)
            self.schema.check_errors(doc, "reading accounting")
            jobs = self._with_gpu_use(self.schema.parse_accounted_jobs(doc), doc)
        if job_ids is not None:
            wanted = {str(j) for j in job_ids}  # an array task by its "<array>_<index>"
            jobs = [j for j in jobs if j.job_id in wanted
                    or f"{j.array_job_id}_{j.array_task_id}" in wanted]
        if any(j.exit_code is None and j.end_time for j in jobs):
            live = {j.job_id: j for j in self.live_jobs()}
            jobs = [
                replace(j, exit_code=live[j.job_id].exit_code)
                if j.exit_code is None and j.end_time and j.job_id in live
                else j
                for j in jobs
            ]
        return jobs

    def _with_gpu_use(self, jobs: list[SlurmJob], doc: Mapping[str, Any]) -> list[SlurmJob]:
        """GPU use from the steps' TRES usage in slurmdbd's records (slurm/gpu_usage.py)."""
        return gpu_usage.with_gpu_use(jobs, gpu_usage.steps_from_json(doc),
                                      idle_below_pct=self.gpu_idle_below_pct)

    def ping(self) -> None:
        doc = self._request("GET", self.schema.PATH_PING, what="ping")
        if doc.get("errors"):
            raise BackendUnavailable(
                "slurmctld does not answer behind slurmrestd",
                hint="Check `scontrol ping`.",
            )

    # ------------------------------------------------------------------ accounts (slurmdb)
    def _db(self, method: str, path: str, *, what: str, **kw: Any) -> Mapping[str, Any]:
        doc = self._request(method, path, what=what, **kw)
        self.schema.check_errors(doc, what)
        return doc

    def _cluster_name(self) -> str:
        if self._cluster is None:
            doc = self._db("GET", self.schema.PATH_DB_CLUSTERS, what="listing clusters")
            names: list[str] = self.schema.parse_clusters(doc)
            if len(names) != 1:
                raise BackendError(
                    f"slurmdbd knows {len(names)} clusters ({', '.join(names) or 'none'}); "
                    "cannot tell which one to change",
                    hint="Use RECHENWERK_SLURM_TRANSPORT=cli on the cluster's submit host.",
                )
            self._cluster = names[0]
        return self._cluster

    def _sacctmgr_fallback(self, what: str) -> Any:
        """The CLI transport for what slurmrestd cannot change (module docstring)."""
        from rechenwerk.execution.slurm.cli_transport import CliTransport

        if self._cli is None:
            self._cli = CliTransport(command_prefix=self._command_prefix)
        try:
            self._cli._exe("sacctmgr")
        except BackendUnavailable as exc:
            raise BackendError(
                f"cannot {what}: slurmrestd {self.schema.VERSION} has no working way to do "
                "it and "
                "`sacctmgr` is not installed here",
                hint="Install the Slurm client (and the munge key) on the Rechenwerk host, "
                "or run `rechenwerk slurm sync` with RECHENWERK_SLURM_TRANSPORT=cli there.",
            ) from exc
        return self._cli

    def accounts(self, names: Sequence[str]) -> dict[str, SlurmAccount]:
        wanted = set(names)
        if not wanted:
            return {}
        assocs = self._db(
            "GET",
            self.schema.PATH_DB_ASSOCIATIONS,
            what="listing associations",
            params={"account": ",".join(sorted(wanted))},
        )
        accts = self._db("GET", self.schema.PATH_DB_ACCOUNTS, what="listing accounts")
        found: dict[str, SlurmAccount] = self.schema.parse_accounts(accts, assocs, wanted)
        return found

    def add_account(
        self,
        name: str,
        *,
        description: str,
        organization: str,
        gpu_minutes: int,
        qos: Sequence[str],
        default_qos: str,
    ) -> None:
        if self.schema.PATH_DB_ACCOUNTS_ASSOCIATION:  # v0.0.40+: one request, as sacctmgr
            self._db(
                "POST",
                self.schema.PATH_DB_ACCOUNTS_ASSOCIATION,
                what=f"adding account {name}",
                json=self.schema.account_add_cond_payload(
                    name,
                    description=description,
                    organization=organization,
                    cluster=self._cluster_name(),
                    gpu_minutes=gpu_minutes,
                    qos=list(qos),
                    default_qos=default_qos,
                ),
            )
            return
        self._db(
            "POST",
            self.schema.PATH_DB_ACCOUNTS,
            what=f"adding account {name}",
            json=self.schema.account_payload(
                name, description=description, organization=organization
            ),
        )
        self._db(
            "POST",
            self.schema.PATH_DB_ASSOCIATIONS,
            what=f"adding the association of account {name}",
            json=self.schema.account_association_payload(
                name,
                cluster=self._cluster_name(),
                gpu_minutes=gpu_minutes,
                qos=list(qos),
                default_qos=default_qos,
            ),
        )

    def set_account_gpu_minutes(self, name: str, gpu_minutes: int) -> None:
        if not self.schema.REST_LIMIT_CHANGE:
            self._sacctmgr_fallback(
                f"change GrpTRESMins of account {name}"
            ).set_account_gpu_minutes(name, gpu_minutes)
            return
        cluster = self._cluster_name()
        current = self._db(
            "GET",
            self.schema.PATH_DB_ASSOCIATIONS,
            what=f"reading the association of account {name}",
            params={"account": name, "cluster": cluster},
        )
        own = self.schema.own_association(current, name)
        if own is None:
            raise BackendError(
                f"cannot change GrpTRESMins of account {name}: slurmdbd has no association "
                f"of the account itself on cluster {cluster}",
                hint=f"Check `sacctmgr show assoc account={name}`; deleting the account "
                "lets `rechenwerk slurm sync` create it again.",
            )
        self._db(
            "POST",
            self.schema.PATH_DB_ASSOCIATIONS,
            what=f"changing GrpTRESMins of account {name}",
            json=self.schema.account_limit_payload(
                name, cluster=cluster, gpu_minutes=gpu_minutes, current=own
            ),
        )

    def set_account_description(self, name: str, description: str) -> None:
        # POST /accounts updates an existing account's description
        organization = "rechenwerk"
        for a in self._db("GET", self.schema.PATH_DB_ACCOUNTS, what="listing accounts").get(
            "accounts"
        ) or []:
            if a.get("name") == name and a.get("organization"):
                organization = str(a["organization"])
        self._db(
            "POST",
            self.schema.PATH_DB_ACCOUNTS,
            what=f"changing the description of account {name}",
            json=self.schema.account_payload(
                name, description=description, organization=organization
            ),
        )

    def reset_account_usage(self, name: str) -> None:
        self._sacctmgr_fallback(f"reset the usage of account {name}").reset_account_usage(name)

    def add_user(self, user: str, account: str) -> None:
        if self.schema.PATH_DB_USERS_ASSOCIATION:  # v0.0.40+, as `sacctmgr add user`
            self._db(
                "POST",
                self.schema.PATH_DB_USERS_ASSOCIATION,
                what=f"associating user {user} with {account}",
                json=self.schema.user_add_cond_payload(
                    user, account, cluster=self._cluster_name()
                ),
            )
            return
        self._db(
            "POST",
            self.schema.PATH_DB_ASSOCIATIONS,
            what=f"associating user {user} with {account}",
            json=self.schema.user_association_payload(
                user, account, cluster=self._cluster_name()
            ),
        )

    def remove_user(self, user: str, account: str) -> None:
        self._db(
            "DELETE",
            self.schema.PATH_DB_ASSOCIATION,
            what=f"removing user {user} from {account}",
            params={"account": account, "user": user, "cluster": self._cluster_name()},
        )

    def qos_priorities(self) -> dict[str, int]:
        doc = self._db("GET", self.schema.PATH_DB_QOS, what="listing QOS")
        found: dict[str, int] = self.schema.parse_qos(doc)
        return found

    def set_qos_priority(self, name: str, priority: int) -> None:
        self._db(
            "POST",
            self.schema.PATH_DB_QOS,
            what=f"setting QOS {name}",
            json=self.schema.qos_payload(name, priority),
        )

    # advance reservations: not in the v0.0.38 API (docs/slurm.md, "Reservations")
    def cluster_nodes(self) -> list[SlurmNode]:
        raise BackendError(_NO_RESERVATIONS)

    def reservations(self) -> list[SlurmReservation]:
        raise BackendError(_NO_RESERVATIONS)

    def create_reservation(self, r: SlurmReservation) -> None:
        raise BackendError(_NO_RESERVATIONS)

    def update_reservation(self, r: SlurmReservation) -> None:
        raise BackendError(_NO_RESERVATIONS)

    def delete_reservation(self, name: str) -> None:
        raise BackendError(_NO_RESERVATIONS)

    def close(self) -> None:
        self._client.close()


def _controller_down(doc: Mapping[str, Any]) -> bool:
    for err in doc.get("errors") or []:
        text = f"{err.get('description', '')} {err.get('error', '')}".lower()
        if "unable to contact" in text or "connection refused" in text or "timed out" in text:
            return True
    return False


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _scontrol_token(user: str, prefix: Sequence[str] = ()) -> str:
    from rechenwerk.execution.slurm.cli_transport import with_prefix

    try:
        proc = subprocess.run(
            with_prefix(prefix, ["scontrol", "token", f"username={user}",
                                 f"lifespan={_TOKEN_LIFESPAN_S}"]),
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailable(f"cannot get a Slurm JWT for {user!r}: {exc}") from exc
    out = proc.stdout.strip()
    if proc.returncode != 0 or not out.startswith("SLURM_JWT="):
        raise BackendError(
            f"cannot get a Slurm JWT for {user!r}: {proc.stderr.strip() or out}",
            hint="`scontrol token` needs root or SlurmUser and AuthAltTypes=auth/jwt; "
            "or set RECHENWERK_SLURM_REST_TOKEN.",
        )
    return out.removeprefix("SLURM_JWT=")


def _ref(job_id: str) -> str:
    """A job id (``1234``) or an array task (``1234_5``), checked before it reaches a URL."""
    base, task = split_job_ref(job_id)
    return base if task is None else f"{base}_{task}"
