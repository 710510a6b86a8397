"""Settings from environment variables (prefix ``RECHENWERK_``) with embedded defaults.

The defaults run a whole centre on one machine: a SQLite file under ``var/``, the local
executor over an emulated GPU inventory, and a log-only mail sender.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from rechenwerk.access.workdays import parse_holidays
from rechenwerk.config_file import config_path, read_config
from rechenwerk.errors import InvalidInput, issues_from_validation

DEV_SECRET_KEY = "dev-only-change-me"
MIN_SECRET_KEY_LENGTH = 16
SECRET_KEY_HOW = ('set RECHENWERK_SECRET_KEY to a random value, e.g. '
                  'export RECHENWERK_SECRET_KEY="$(python -c '
                  '\'import secrets; print(secrets.token_hex(32))\')"')


def _default_data_dir() -> Path:
    return Path.cwd() / "var"


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by RECHENWERK_CONFIG (config_file.py), below the
    environment variables."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ gives all values at once

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        if path is None:
            return {}
        return read_config(path, self.settings_cls.model_fields)


_PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None


class OidcProvider(BaseModel):
    """One OpenID Provider of the centre (settings ``oidc_providers``; docs/access.md,
    "Federated sign-in"). Patterns are Python regular expressions matched against a whole
    claim value (re.fullmatch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # in URLs, audit entries and --provider
    display_name: str = Field(min_length=1, max_length=80)  # "Sign in with <display_name>"
    issuer: str = Field(pattern=r"^https?://[^\s]+$")
    client_id: str = Field(min_length=1)
    client_secret: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    # Which claim gives what; a missing username claim falls back to the e-mail's local
    # part. The e-mail claim is required.
    username_claim: str = "preferred_username"
    email_claim: str = "email"
    name_claim: str = "name"
    # The user's organisation: the claim's value looked up in ``organizations`` (claim
    # value -> name of an existing Rechenwerk organisation); unmapped values leave it.
    organization_claim: str = ""
    organizations: dict[str, str] = Field(default_factory=dict)
    # Rights and project memberships from a multi-valued claim (AARC-G002 entitlements).
    entitlements_claim: str = "eduperson_entitlement"
    operator_entitlements: list[str] = Field(default_factory=list)
    reviewer_entitlements: list[str] = Field(default_factory=list)
    # Must hold a group "project" (the project's slug) and may hold "role"; the role's
    # value through membership_roles (member or viewer, or a name mapped to one; a
    # project's PI is set in Rechenwerk, so "pi" counts as member).
    membership_entitlement: str = ""
    membership_roles: dict[str, str] = Field(default_factory=dict)
    default_membership_role: Literal["member", "viewer"] = "member"
    timeout_s: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(_PROVIDER_NAME, value):
            raise ValueError(f"provider name {value!r}: 1-32 lower-case letters, digits, "
                             "'-' or '_', starting with a letter")
        return value

    @field_validator("operator_entitlements", "reviewer_entitlements")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _regex(pattern)
        return value

    @field_validator("membership_entitlement")
    @classmethod
    def _membership(cls, value: str) -> str:
        if value and "project" not in _regex(value).groupindex:
            raise ValueError("needs a group (?P<project>...)")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECHENWERK_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments, then RECHENWERK_* variables, then the configuration file.
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    # --- deployment -----------------------------------------------------------------
    # "production" makes `rechenwerk server` refuse what is only safe for a demo on one
    # machine (production.py); a bind beyond loopback counts as production too.
    env: Literal["development", "production"] = "development"

    # --- storage -------------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""  # empty -> sqlite file in data_dir

    # --- server ---------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Signs the portal's session cookie and derives its CSRF tokens. The development value
    # is refused by `rechenwerk server` outside the embedded default (check_secret_key).
    secret_key: str = DEV_SECRET_KEY
    # Portal sessions end after this long without a request, and at the latest this long
    # after login (the server-side record decides; access/portal_sessions.py).
    session_idle_s: int = Field(default=2 * 3600, gt=0)
    session_max_age_s: int = Field(default=12 * 3600, gt=0)
    # URL the CLI talks to; the CLI stores it at login too.
    api_url: str = "http://127.0.0.1:8000"

    # --- scheduling -----------------------------------------------------------------
    # Policy expression understood by rechenwerk.scheduling (e.g. "multifactor+easy-backfill").
    scheduler_policy: str = "multifactor+easy-backfill"
    # The policy's parameters (rechenwerk.scheduling.params.PolicyParams: priority
    # weights, fair-share half-life, backfill interval, ...): a YAML file's path or an
    # inline JSON object; empty -> the documented defaults. `rechenwerk simulate
    # --params` takes the same file, so a setting can be tried on a trace first.
    scheduler_params: str = ""
    # Seconds between cycles: finite, 0.05 s (the loop's floor) .. 1 hour.
    scheduler_interval_s: float = Field(default=1.0, ge=0.05, le=3600.0, allow_inf_nan=False)
    # Longest walltime per QOS, overriding the defaults (high 24h, normal 48h, low 72h)
    # for the QOS named, e.g. '{"high": "12h", "low": "7d"}'.
    qos_max_walltime: dict[str, str] = Field(default_factory=dict)
    scheduler_enabled: bool = True
    # Start-time forecasts (jobs/forecasts.py): every this many seconds the leader runs
    # the policy forward from the live state (jobs end at their walltime limit) and
    # stores each waiting job's expected start; 0 turns them off. A job that cannot
    # start within the horizon has no forecast.
    forecast_interval_s: float = Field(default=60.0, ge=0.0, le=86400.0, allow_inf_nan=False)
    forecast_horizon_s: float = Field(default=30 * 86400.0, gt=0.0, le=366 * 86400.0,
                                      allow_inf_nan=False)
    # How long a forecast expects jobs to run: "history" (the share of its walltime each
    # project's recent jobs ran) or "walltime" (every job to its limit).
    forecast_runtime: Literal["history", "walltime"] = "history"
    # Slurm: the scheduler loop keeps Slurm's rw- reservations in line with Rechenwerk's
    # at once after a change and at least every this many seconds; 0: only by hand
    # (`rechenwerk slurm sync-reservations`).
    slurm_reservation_sync_s: float = Field(default=60.0, ge=0.0, le=86400.0,
                                            allow_inf_nan=False)
    # What happens when a submission exceeds the live balance: refuse it, or accept it in
    # the low (scavenger) QOS.
    overdraft_policy: Literal["refuse", "low_qos"] = "refuse"
    # --- job dependencies (jobs/dependencies.py, docs/jobs.md "Dependencies") -------
    # Slurm's kill_invalid_depend: a job whose dependency can never be met is cancelled;
    # false: it stays pending with reason dependency_never_satisfied for its user.
    kill_invalid_dependency: bool = True
    # --- job arrays (scheduling/arrays.py, docs/jobs.md "Job arrays") ----------------
    # Most tasks one array may have (Slurm's MaxArraySize bounds the index instead).
    max_array_tasks: int = Field(default=10_000, ge=1, le=100_000)

    # --- execution ------------------------------------------------------------------
    executor: Literal["local", "slurm"] = "local"
    # Several clusters behind one centre (execution/clusters.py, docs/slurm.md "Several
    # clusters"): the path of a YAML file declaring them. Empty: one cluster made of the
    # flat settings below, named cluster_name (empty: the executor's name, "local" or
    # "slurm").
    clusters: str = Field(default="", max_length=4096)
    cluster_name: str = Field(default="", pattern=r"^([a-z][a-z0-9-]{0,31})?$")
    # Emulated inventory for the local executor: "NODESxGPUS[:GPU_TYPE]" or a YAML file.
    local_cluster: str = "2x8:A100-80GB"
    # SIGTERM -> SIGKILL grace on cancel/preemption: finite, 0 (none) .. 1 hour.
    kill_grace_s: float = Field(default=10.0, ge=0.0, le=3600.0, allow_inf_nan=False)
    # Interactive sessions (sessions/, docs/jobs.md): the Python on the compute nodes
    # that has JupyterLab ("": this server's own, which needs rechenwerk[sessions]).
    session_python: str = Field(default="", pattern=r"^(/[^\x00]*)?$", max_length=4096)
    # How the server reaches a Slurm node's session: a host name or address with "{node}"
    # for the node's Slurm name (e.g. "{node}.ib.cluster"; the dev cluster: "127.0.0.1").
    session_node_host: str = Field(default="{node}", min_length=1, max_length=255,
                                   pattern=r"^[A-Za-z0-9.:{}_-]+$")
    # --- isolation of local jobs (execution/sandbox.py, docs/security.md) -----------
    # auto: every job in a bubblewrap sandbox when bwrap works here, else unsandboxed
    # with a warning at start; sandbox: required (the server refuses to start without
    # it); off: jobs run as the server's account and see what it sees (one trusted user).
    local_isolation: Literal["auto", "sandbox", "off"] = "auto"
    # Numeric Unix accounts for sandboxed jobs when the server runs as root: user u's
    # job runs as uid FIRST+u in group FIRST+p of its project p. Ranges reserved for
    # Rechenwerk; "" keeps jobs on the server's account (inside the sandbox).
    local_job_uids: str = "1900000000-1999999999"
    local_job_gids: str = "1900000000-1999999999"
    # Extra paths shown to sandboxed jobs, separated by ":" (datasets, software, scratch).
    local_sandbox_ro: str = ""
    local_sandbox_rw: str = ""
    # Extra server variables passed to jobs, by name, separated by "," (none is secret).
    local_pass_env: str = ""
    # Per-job limits through cgroups where the machine offers them: processes/threads,
    # and memory per GPU in MiB (0: no memory limit).
    local_pids_max: int = Field(default=4096, ge=64, le=4_194_304)
    local_mem_per_gpu_mb: int = Field(default=0, ge=0, le=64 * 1024 * 1024)
    # --- GPU use (execution/gpu_use.py, docs/jobs.md "GPU use") ---------------------
    # Seconds between NVML readings of a local job's GPUs (0: not sampled); GPU time
    # below gpu_idle_below_pct utilisation counts as idle (local and Slurm figures).
    gpu_sample_interval_s: float = Field(default=10.0, ge=0.0, le=3600.0,
                                         allow_inf_nan=False)
    gpu_idle_below_pct: float = Field(default=5.0, ge=0.0, le=100.0, allow_inf_nan=False)
    slurm_transport: Literal["cli", "rest"] = "cli"
    slurm_rest_url: str = "unix:/run/slurmrestd.sock"
    slurm_partition: str = "debug"
    # "user": jobs run as the Rechenwerk user's Unix account (CLI as root via runuser, or
    # REST with per-user JWTs); "service": as the account the server runs under.
    slurm_submit_as: Literal["user", "service"] = "user"
    slurm_rest_token: str = ""  # JWT for TCP slurmrestd; empty -> `scontrol token` per user
    # Slurm's JSON data format, e.g. "v0.0.41"; empty: the release's own for the CLI
    # (`scontrol version`), the newest slurmrestd and Rechenwerk share for REST.
    slurm_data_format: str = Field(default="", pattern=r"^(v\d+\.\d+\.\d+)?$")
    # Rechenwerk GPU type -> Slurm GRES type (gres.conf Type=), e.g. '{"A100-80GB": "a100"}':
    # jobs with a gpu_type then ask for --gres=gpu:<type>:N. Empty: untyped gpu:N for all.
    slurm_gpu_types: dict[str, str] = Field(default_factory=dict)
    # How this cluster runs a job's container_image: a command with {image} where the
    # image goes, prefixed to the job's program (e.g. "apptainer exec --nv {image}",
    # "enroot start {image}"). Empty: jobs with an image are refused.
    slurm_container_runtime: str = Field(default="", max_length=1000)
    # Put in front of every Slurm command the CLI transport runs (and `scontrol token`),
    # split like a shell would: "chroot /var/lib/rechenwerk-slurm/24.11" (the dev
    # cluster's Slurm 24.11), "ssh login1" (a centre's login node). Empty: run them here.
    slurm_command_prefix: str = Field(default="", max_length=1000)

    # --- planning -------------------------------------------------------------------
    # Extra hardware catalogue YAML (same schema as planning/data/hardware.yaml) whose
    # entries extend or replace the built-in GPUs; empty -> built-in catalogue only.
    hardware_catalogue: str = ""

    # --- reports --------------------------------------------------------------------
    # Longest one report computation may run (REST API and portal): finite, 1 s .. 1 hour.
    # Past it the report is stopped, its transaction rolled back, and the request answered
    # 422 "report too large" (docs/security.md, Limits).
    report_timeout_s: float = Field(default=60.0, ge=1.0, le=3600.0, allow_inf_nan=False)

    # --- notifications --------------------------------------------------------------
    smtp_host: str = ""  # empty -> notifications are only logged
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "rechenwerk@localhost"
    # auto: STARTTLS when offered (required once credentials are set); starttls: always
    # (port 587); ssl: implicit TLS (port 465); off: never (refused with credentials).
    smtp_tls: Literal["auto", "starttls", "ssl", "off"] = "auto"
    smtp_username: str = ""  # empty -> no AUTH (a relay that trusts the server's address)
    smtp_password: str = ""

    # --- metrics (observability/, docs/operations.md "Metrics") --------------------
    # /metrics answers "Authorization: Bearer <token>" with this token (Prometheus'
    # credentials_file) or an operator's API token, nobody else; empty: operators' only.
    # 32..512 visible ASCII characters, e.g. `python -c 'import secrets;
    # print(secrets.token_hex(32))'`.
    metrics_token: str = Field(default="", pattern=r"^([!-~]{32,512})?$")
    # A port of its own for /metrics on metrics_host (loopback by default); the main
    # port then has no /metrics. 0: /metrics on the main port.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- access (access/workdays.py, docs/operations.md "Holidays") -----------------
    # The centre's holiday calendar for working-day deadlines: ISO dates separated by
    # commas or spaces, or the path of a file of ISO dates (one per line, # comments).
    # Empty: only Saturdays and Sundays are skipped.
    holidays: str = ""
    # The applicant's right to reply to the reviews (review pipeline): working days
    # from the day the reviews are complete.
    right_to_reply_working_days: int = Field(default=10, ge=1, le=60)

    # The PUE the energy estimate of a run uses, per period: comma-separated YYYY-MM:PUE,
    # each from that month (UTC) on, e.g. "2026-01:1.35,2026-07:1.25"; before the first
    # month and when empty, planning's default 1.2 (docs/operations.md "Energy").
    pue_by_period: str = ""

    # New projects of PIs wait for an operator's approval before they run jobs or apply
    # (access/projects.py, docs/access.md "Project approval"). Off: they work at once.
    project_approval: bool = False

    # --- award reports (access/report_tasks.py, docs/access.md "Award reports") ------
    # The final report is due this many months after an award ends.
    final_report_months: int = Field(default=2, ge=0, le=12)
    # The PI is reminded by e-mail this many days before a report is due.
    report_reminder_days: int = Field(default=14, ge=0, le=365)
    # The largest report document (PDF) accepted, in bytes.
    report_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=1024**3)
    # Refuse new proposals of a project while one of its final reports is overdue.
    block_proposals_on_overdue_report: bool = False
    # How publications acknowledge the centre; {award} and {project} are filled in.
    award_acknowledgement: str = Field(default=(
        "We acknowledge the compute time granted by the Rechenwerk compute centre under "
        "award {award} (project {project})."), max_length=2000)

    # --- federated sign-in (OpenID Connect; access/oidc/, docs/access.md) ------------
    # The centre's OpenID Providers, a list of tables in the TOML file
    # ([[oidc_providers]]) or a JSON list in RECHENWERK_OIDC_PROVIDERS. Empty: local
    # passwords and API tokens only.
    oidc_providers: list[OidcProvider] = Field(default_factory=list)
    # Who may still log in with a local password once providers are configured: "all",
    # or "operators" only (break-glass access when the providers are down).
    local_login: Literal["all", "operators"] = "all"
    # The public address of this server as browsers reach it (the OIDC redirect URI is
    # <public_url>/login/oidc/callback); empty -> taken from each request.
    public_url: str = ""

    @field_validator("slurm_command_prefix")
    @classmethod
    def _command_prefix(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:  # unbalanced quotes or a trailing backslash
            raise ValueError(f"not a command line ({exc}): e.g. 'ssh login1'") from None
        return value.strip()

    @property
    def slurm_command_prefix_argv(self) -> tuple[str, ...]:
        return tuple(shlex.split(self.slurm_command_prefix))

    @field_validator("session_node_host")
    @classmethod
    def _session_node_host(cls, value: str) -> str:
        if "{" in value.replace("{node}", "") or "}" in value.replace("{node}", ""):
            raise ValueError('only the placeholder {node} may stand in braces: e.g. '
                             '"{node}.ib.cluster" or "127.0.0.1"')
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_providers(cls, value: list[OidcProvider]) -> list[OidcProvider]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: str) -> str:
        try:
            parse_holidays(value)  # refuse a bad calendar at start-up, not on a submit
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("pue_by_period")
    @classmethod
    def _pue_by_period(cls, value: str) -> str:
        from rechenwerk.planning.energy import parse_pue_by_period

        try:
            parse_pue_by_period(value)  # refuse a bad schedule at start-up
        except InvalidInput as exc:
            raise ValueError(f"{exc.message} ({exc.hint})") from None
        return value

    def pue_at(self, at: datetime | None) -> float:
        """The PUE of ``pue_by_period`` for a run starting ``at``."""
        from rechenwerk.planning.energy import parse_pue_by_period, pue_at

        return pue_at(parse_pue_by_period(self.pue_by_period), at)

    @property
    def holiday_dates(self) -> frozenset[date]:
        return _parsed_holidays(self.holidays)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'rechenwerk.db'}"


@lru_cache(maxsize=8)
def _parsed_holidays(value: str) -> frozenset[date]:
    # read once per value: a holiday file is read at start-up, not on every submission
    return parse_holidays(value)


def check_secret_key(settings: Settings) -> str | None:
    """The server's check of ``RECHENWERK_SECRET_KEY`` before it serves anyone.

    The development value (or one shorter than ``MIN_SECRET_KEY_LENGTH``) is public, so
    anyone could sign cookies with it: it is refused (InvalidInput, one line) unless the
    server runs the embedded default, a SQLite database with the local executor, where it
    is allowed with the warning line returned. None: the key is fine."""
    key = settings.secret_key
    if key != DEV_SECRET_KEY and len(key) >= MIN_SECRET_KEY_LENGTH:
        return None
    what = ("the development value" if key == DEV_SECRET_KEY
            else f"shorter than {MIN_SECRET_KEY_LENGTH} characters")
    embedded = (settings.effective_database_url.startswith("sqlite")
                and settings.executor == "local")
    if embedded:
        return (f"warning: RECHENWERK_SECRET_KEY is {what}: accepted only for the embedded "
                f"default (SQLite, local executor); before serving others, {SECRET_KEY_HOW}")
    where = ("the SQLite database" if settings.effective_database_url.startswith("sqlite")
             else "a non-SQLite database")
    if settings.executor != "local":
        where += f" and the {settings.executor} executor"
    raise InvalidInput(
        f"RECHENWERK_SECRET_KEY is {what}, refused with {where}: {SECRET_KEY_HOW}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad value is one clear error naming its
    variable (the CLI prints it as one line), not pydantic's traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        # Only the first problem, named by its variable: one line for the CLI.
        first = issues_from_validation(exc)[0]
        name = str(first.loc[0]) if first.loc else "?"
        # Within a list of tables (oidc_providers): which one and which key.
        inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.loc[1:])
        path = config_path()
        if f"RECHENWERK_{name.upper()}" not in os.environ and path is not None:
            raise InvalidInput(f"{path}: {name}{inner}: {first.message}", field=name,
                               hint="Fix the value in the configuration file.") from None
        raise InvalidInput(f"RECHENWERK_{name.upper()}{inner}: {first.message}", field=name,
                           hint="Fix or unset the variable (README, Configuration).") from None
    except SettingsError as exc:  # a dict/list setting whose value is not JSON
        m = re.search(r'field "([^"]+)"', str(exc))
        name = m.group(1) if m else "?"
        raise InvalidInput(f"RECHENWERK_{name.upper()}: not valid JSON",
                           field=name,
                           hint="Give a JSON object, e.g. '{\"high\": \"12h\"}'.") from None
