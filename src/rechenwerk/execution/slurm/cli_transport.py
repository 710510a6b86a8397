"""Talk to Slurm through its commands: ``sbatch --parsable``, ``scancel``,
``squeue --json``, ``sacct --json``, ``sacctmgr --parsable2`` (all argv lists, never a
shell). ``sacctmgr`` has no ``--json`` before Slurm 23.02, so its listings are read as
``--noheader --parsable2`` with explicit ``format=`` columns. The ``--json`` format follows
the release (``scontrol version``, asked once; ``versions.py``)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from rechenwerk.errors import BackendError, BackendUnavailable, InvalidInput
from rechenwerk.execution.gpu_use import DEFAULT_IDLE_BELOW_PCT
from rechenwerk.execution.slurm import gpu_usage, versions
from rechenwerk.execution.slurm.hostlist import expand_hostlist
from rechenwerk.execution.slurm.types import (
    SlurmAccount,
    SlurmJob,
    SlurmNode,
    SlurmReservation,
    SubmitSpec,
    split_job_ref,
)

_UNREACHABLE = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "slurm_persist_conn_open",
    "unable to establish connection",
    "zero bytes were transmitted",
)
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# sbatch --test-only: "sbatch: Job 12 to start at 2026-12-07T23:50:00 using 1 processors
# on nodes node1 in partition debug"
_TEST_ONLY = re.compile(r"to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")
_SUBMIT_HINT = (
    "Is the project's Slurm account there and is the user associated with it? "
    "Run `rechenwerk slurm sync`; see `sacctmgr show assoc account=<project>`."
)


_SACCTMGR_TIMEOUT_S = 30.0


def gpu_minutes_from_tres(tres: str) -> int | None:
    """``"cpu=10,gres/gpu=600"`` -> 600; no gres/gpu entry -> None."""
    for item in tres.split(","):
        key, _, val = item.partition("=")
        if key == "gres/gpu" and val.lstrip("-").isdigit():
            return int(val)
    return None


def _ref(job_id: str) -> str:
    """A job id (``1234``) or an array task (``1234_5``), checked before it reaches argv."""
    base, task = split_job_ref(job_id)
    return base if task is None else f"{base}_{task}"


def _slurm_time(dt: datetime) -> str:
    return dt.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def with_prefix(prefix: Sequence[str], argv: Sequence[str]) -> list[str]:
    """``argv`` run through the operator's command prefix (RECHENWERK_SLURM_COMMAND_PREFIX:
    ``chroot /srv/slurm-24.11``, ``ssh login1`` ...). ssh hands the far side one command
    line for its shell, so there every argument is quoted to arrive unchanged."""
    if not prefix:
        return list(argv)
    if shutil.which(prefix[0]) is None:
        raise BackendUnavailable(
            f"the Slurm command prefix's program {prefix[0]!r} is not found on PATH",
            hint="Check RECHENWERK_SLURM_COMMAND_PREFIX.",
        )
    if os.path.basename(prefix[0]) == "ssh":
        return [*prefix, *(shlex.quote(a) for a in argv)]
    return [*prefix, *argv]


class CliTransport:
    name = "cli"
    # GPU time below this utilisation counts as idle (settings.gpu_idle_below_pct)
    gpu_idle_below_pct = DEFAULT_IDLE_BELOW_PCT

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        bin_dir: str | None = None,
        data_format: str | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.timeout_s = timeout_s
        self.bin_dir = bin_dir
        # Put in front of every Slurm command, before any `runuser -u USER --`.
        self.command_prefix = tuple(command_prefix)
        self._controller_down = False
        # an operator's choice of format (23.11+: passed as --json=<format>); None: the
        # release's own, found on first use
        self._data_format = versions.format_by_name(data_format) if data_format else None
        self._schema: ModuleType | None = None
        self._json_opt = "--json"

    @property
    def schema(self) -> ModuleType:
        """The data format module for this Slurm's ``--json`` output."""
        if self._schema is None:
            proc = self._run([self._exe("scontrol"), "version"], what="scontrol version")
            if proc.returncode != 0:
                raise BackendError(f"scontrol version failed: {proc.stderr.strip()}")
            release = versions.parse_release(proc.stdout)
            if self._data_format is None:
                if release in versions.RELEASES or not versions.can_choose_json(release):
                    self._schema = versions.format_for_release(release)
                    return self._schema
                # a newer release than Rechenwerk knows: the newest format both know
                self._schema = self._newest_offered(release)
                self._json_opt = f"--json={self._schema.VERSION}"
                return self._schema
            own = versions.RELEASES.get(release)
            if own != self._data_format.VERSION:
                if not versions.can_choose_json(release):
                    raise BackendError(
                        f"Slurm {release[0]}.{release[1]:02d} prints only its own JSON "
                        f"format ({own}), not {self._data_format.VERSION}",
                        hint="Leave RECHENWERK_SLURM_DATA_FORMAT empty on this cluster.",
                    )
                self._json_opt = f"--json={self._data_format.VERSION}"
            self._schema = self._data_format
        return self._schema

    def _newest_offered(self, release: tuple[int, int]) -> ModuleType:
        """The newest data format this release's commands print that Rechenwerk knows
        (``squeue --json=list``); BackendError naming both lists when there is none."""
        proc = self._run([self._exe("squeue"), "--json=list"], what="squeue --json=list")
        offered = versions.offered_by_json_list(proc.stdout + proc.stderr)
        if not offered:
            raise BackendError(
                f"Slurm {release[0]}.{release[1]:02d} is newer than this Rechenwerk knows and "
                f"`squeue --json=list` named no data format: {proc.stderr.strip()[:200]}",
                hint=f"Supported Slurm releases: {versions.supported_releases()}; or set "
                "RECHENWERK_SLURM_DATA_FORMAT.")
        return versions.newest_common(
            offered, where=f"Slurm {release[0]}.{release[1]:02d}'s commands (--json=list)")

    def _json_flag(self) -> str:
        self.schema  # noqa: B018 - probes the release, which decides the flag
        return self._json_opt

    def _check_controller(self, what: str) -> None:
        try:
            proc = subprocess.run(
                with_prefix(self.command_prefix, [self._exe("scontrol"), "ping"]),
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=self._env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            proc = None
        if proc is not None and "is UP" in proc.stdout:
            self._controller_down = False
            return
        raise BackendUnavailable(
            f"{what}: slurmctld unreachable (scontrol ping: "
            f"{proc.stdout.strip() if proc else 'timed out'})",
            hint="Rechenwerk keeps the job pending and retries; check `scontrol ping`.",
        )

    # ------------------------------------------------------------------ plumbing
    def _exe(self, name: str) -> str:
        if self.bin_dir:
            return os.path.join(self.bin_dir, name)
        if self.command_prefix:
            return name  # found on the PATH where the prefix runs it (the root, the login node)
        found = shutil.which(name)
        if not found:
            raise BackendUnavailable(
                f"Slurm command {name!r} not found on PATH",
                hint="Install the Slurm client (Debian: slurm-client) or use "
                "RECHENWERK_SLURM_TRANSPORT=rest.",
            )
        return found

    def _run(
        self, argv: list[str], *, stdin: str | None = None, what: str, user: str | None = None,
        utc: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        if user is not None:
            argv = self._as_user(user) + argv
        argv = with_prefix(self.command_prefix, argv)
        if self._controller_down and what not in ("sacct", "scontrol ping", "scontrol version"):
            # Slurm's commands need ~MessageTimeout (10 s) to give up on a dead
            # controller; after one such failure, ask `scontrol ping` (instant) first.
            self._check_controller(what)
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                # reservation times are read and written in UTC (Slurm uses local time)
                env={**self._env(), "TZ": "UTC"} if utc else self._env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable(
                f"{what}: Slurm did not answer within {self.timeout_s:.0f} s",
                hint="Check that slurmctld runs (`scontrol ping`).",
            ) from exc
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            low = err.lower()
            if any(s in low for s in _UNREACHABLE):
                last = err.splitlines()[-1] if err else "no output"
                self._controller_down = what != "sacct"
                raise BackendUnavailable(
                    f"{what}: slurmctld unreachable ({last})",
                    hint="Rechenwerk keeps the job pending and retries; check `scontrol ping`.",
                )
        return proc

    def _env(self) -> dict[str, str]:
        # The CLI needs only PATH and SLURM_CONF; sbatch exports this env to the job,
        # so the service's own variables (tokens, DB URLs) must never be in it.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for key in ("SLURM_CONF",):
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    def _as_user(self, user: str) -> list[str]:
        if not _UNIX_USER.match(user):
            raise InvalidInput(
                f"user {user!r} is not a valid Unix user name for Slurm",
                field="user",
                hint="Rechenwerk user names must match Unix accounts on the cluster.",
            )
        if user == _current_user():
            return []
        if os.geteuid() != 0:
            raise BackendError(
                f"cannot submit as {user!r}: the service does not run as root",
                hint="Run the server as root, use the REST transport with JWT, or set "
                "RECHENWERK_SLURM_SUBMIT_AS=service.",
            )
        return ["runuser", "-u", user, "--"]

    def _json(self, proc: subprocess.CompletedProcess[str], what: str) -> Mapping[str, Any]:
        if proc.returncode != 0:
            raise BackendError(f"{what} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{what} printed no JSON: {proc.stdout[:200]!r}") from exc
        if not isinstance(doc, dict):
            raise BackendError(f"{what} printed unexpected JSON")
        return doc

    # ------------------------------------------------------------------ transport API
    def submit(self, spec: SubmitSpec) -> str:
        argv = self._sbatch_argv(spec, "--parsable")
        proc = self._run(argv, stdin=spec.script, what="sbatch", user=spec.user)
        if proc.returncode != 0:
            msg = proc.stderr.strip().removeprefix("sbatch: error: ") or "no message"
            raise BackendError(f"Slurm rejected the job: {msg}", hint=_SUBMIT_HINT)
        out = proc.stdout.strip().split(";", 1)[0]
        if not out.isdigit():
            raise BackendError(f"sbatch printed no job id: {proc.stdout!r:.200}")
        return out

    def expected_start(self, spec: SubmitSpec) -> datetime | None:
        """When Slurm would start the job now (``sbatch --test-only``, nothing is
        submitted); None when it does not say. BackendError when it refuses the job."""
        proc = self._run(self._sbatch_argv(spec, "--test-only"), stdin=spec.script,
                         what="sbatch", user=spec.user)
        if proc.returncode != 0:
            msg = proc.stderr.strip().removeprefix("sbatch: error: ") or "no message"
            raise BackendError(f"Slurm would refuse the job: {msg}", hint=_SUBMIT_HINT)
        m = _TEST_ONLY.search(proc.stderr + proc.stdout)
        if m is None:
            return None
        try:  # Slurm prints the controller's local time
            return datetime.fromisoformat(m.group(1)).astimezone(UTC)
        except ValueError:
            return None

    def _sbatch_argv(self, spec: SubmitSpec, mode: str) -> list[str]:
        argv = [
            self._exe("sbatch"),
            mode,
            f"--job-name={spec.name}",
            f"--account={spec.account}",
            f"--partition={spec.partition}",
            f"--time={spec.time_limit_min}",
            f"--nodes={spec.nodes}",
            f"--ntasks-per-node={spec.ntasks_per_node}",
            f"--chdir={spec.workdir}",
            f"--output={spec.stdout}",
            f"--error={spec.stderr}",
            "--open-mode=append",
            "--requeue",
            "--export=ALL",
        ]
        if spec.gres:
            argv.append(f"--gres={spec.gres}")
        if spec.qos:
            argv.append(f"--qos={spec.qos}")
        if spec.comment:
            argv.append(f"--comment={spec.comment}")
        if spec.dependency:
            argv.append(f"--dependency={spec.dependency}")
        if spec.reservation:
            argv.append(f"--reservation={spec.reservation}")
        if spec.array:
            argv.append(f"--array={spec.array}")
        return argv

    def cancel(self, job_id: str, *, signal: str | None = None) -> None:
        argv = [self._exe("scancel")]
        if signal:
            argv += [f"--signal={signal}", "--full"]
        argv.append(_ref(job_id))
        proc = self._run(argv, what="scancel")
        if proc.returncode != 0:
            err = proc.stderr.lower()
            if "invalid job id" in err or "already completing or completed" in err:
                return
            raise BackendError(f"scancel {job_id} failed: {proc.stderr.strip()}")

    def requeue(self, job_id: str) -> None:
        """``scontrol requeue Incomplete``: SIGTERM to the batch script and every step,
        SIGKILL after Slurm's KillWait, then the job waits in the queue again under the
        same id.

        Plain ``scontrol requeue`` also requeues a job that has already *finished* (22.05
        and 24.11 alike: a completed job would run again), and a check beforehand
        (``squeue``) leaves a window in which the job can end. With ``Incomplete`` the
        condition travels with the request (slurm_requeue2's flags): slurmctld requeues
        only a job that is CONFIGURING, RUNNING, STOPPED or SUSPENDED when it handles
        it, and otherwise does nothing (exit 0), so there is no window on our side."""
        jid = _ref(job_id)
        proc = self._run([self._exe("scontrol"), "requeue", "Incomplete", jid],
                         what="scontrol requeue")
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            low = err.lower()
            if "invalid job id" in low or "pending execution" in low or "completing" in low:
                return
            raise BackendError(
                f"scontrol requeue {jid} failed: {err}",
                hint="Requeueing another user's job needs root, SlurmUser or an operator "
                "(sacctmgr AdminLevel=Operator) account.",
            )

    def live_jobs(self) -> list[SlurmJob]:
        proc = self._run([self._exe("squeue"), self._json_flag()], what="squeue")
        doc = self._json(proc, "squeue --json")
        if doc.get("errors"):  # squeue takes no user input: an error means no controller
            self._controller_down = True
            raise BackendUnavailable(
                f"squeue: slurmctld did not answer ({doc['errors'][0]})",
                hint="Check `scontrol ping`; Rechenwerk polls again next cycle.",
            )
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
        # --duplicates: every run of a requeued job (24.11 lists only the latest without
        # it, so a run Slurm requeued would never be charged; 22.05 lists them anyway)
        filt: list[str] = ["-X", "--allusers", "--duplicates"]
        if job_ids:
            filt.append("--jobs=" + ",".join(_ref(j) for j in job_ids))
        if start is not None:
            filt.append(f"--starttime={_slurm_time(start)}")
        elif not job_ids:
            filt.append("--starttime=1970-01-02T00:00:00")
        if end is not None:
            filt.append(f"--endtime={_slurm_time(end)}")
        if accounts:
            filt.append("--accounts=" + ",".join(accounts))
        proc = self._run([self._exe("sacct"), self._json_flag(), *filt], what="sacct")
        doc = self._json(proc, "sacct --json")
        self.schema.check_errors(doc, "sacct")
        jobs: list[SlurmJob] = self.schema.parse_accounted_jobs(doc)
        if any(j.exit_code is None and j.end_time is not None for j in jobs):
            codes = self._exit_codes(filt)
            jobs = [
                _with_exit(j, codes.get(j.job_id)) if j.exit_code is None and j.end_time else j
                for j in jobs
            ]
        if any(j.end_time is not None for j in jobs):
            jobs = gpu_usage.with_gpu_use(jobs, self._step_usage(filt),
                                          idle_below_pct=self.gpu_idle_below_pct)
        return jobs

    def _step_usage(self, filt: list[str]) -> dict[str, list[gpu_usage.StepTres]]:
        """The steps' TRES usage (``sacct --json -X`` lists no steps): GPU use."""
        proc = self._run(
            [self._exe("sacct"), "--parsable2", "--noheader",
             "--format=" + ",".join(gpu_usage.PARSABLE_FIELDS),
             *(f for f in filt if f != "-X")],
            what="sacct",
        )
        return gpu_usage.steps_from_parsable(proc.stdout) if proc.returncode == 0 else {}

    def _exit_codes(self, filt: list[str]) -> dict[str, int]:
        """``sacct --parsable2`` JobIDRaw|ExitCode (the JSON exit code is wrong in 22.05)."""
        proc = self._run(
            [self._exe("sacct"), "--parsable2", "--noheader", "--format=JobIDRaw,ExitCode", *filt],
            what="sacct",
        )
        codes: dict[str, int] = {}
        for line in proc.stdout.splitlines():
            job_id, _, exit_code = line.partition("|")
            code, _, sig = exit_code.partition(":")
            if job_id.isdigit() and code.isdigit():
                codes[job_id] = 128 + int(sig) if sig.isdigit() and int(sig) else int(code)
        return codes

    def ping(self) -> None:
        proc = self._run([self._exe("scontrol"), "ping"], what="scontrol ping")
        if proc.returncode != 0 or "is UP" not in proc.stdout:
            raise BackendUnavailable(
                f"slurmctld does not answer: {proc.stdout.strip() or proc.stderr.strip()}",
                hint="Start it (development: scripts/slurm-dev up).",
            )

    def node_states(self) -> list[dict[str, Any]]:
        """``sinfo --json`` -> name, state, GPUs, GRES in use, reason per node."""
        proc = self._run([self._exe("sinfo"), self._json_flag()], what="sinfo")
        nodes: list[dict[str, Any]] = self.schema.parse_nodes(self._json(proc, "sinfo --json"))
        return nodes

    # ------------------------------------------------------------------ reservations
    def cluster_nodes(self) -> list[SlurmNode]:
        proc = self._run([self._exe("sinfo"), "-N", "-h", "-o", "%N|%G"], what="sinfo")
        if proc.returncode != 0:
            raise BackendError(f"sinfo failed: {(proc.stderr or proc.stdout).strip()}")
        seen: dict[str, SlurmNode] = {}
        for line in proc.stdout.splitlines():
            name, _, gres = line.strip().partition("|")
            if name and name not in seen:
                seen[name] = SlurmNode(name, *parse_gpu_gres(gres))
        return list(seen.values())

    def reservations(self) -> list[SlurmReservation]:
        proc = self._run([self._exe("scontrol"), "show", "reservation", "-o"],
                         what="scontrol show reservation", utc=True)
        if proc.returncode != 0:
            raise BackendError(f"scontrol show reservation failed: {proc.stderr.strip()}")
        return [r for line in proc.stdout.splitlines() if (r := parse_reservation(line))]

    def _scontrol_reservation(self, verb: str, r: SlurmReservation) -> None:
        argv = [self._exe("scontrol"), verb, "reservation",
                *reservation_args(r, update=verb == "update")]
        proc = self._run(argv, what=f"scontrol {verb} reservation", utc=True)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            raise BackendError(f"Slurm refused to {verb} reservation {r.name}: {err}",
                               hint="See `scontrol show reservation` and `squeue -w <nodes>`.")

    def create_reservation(self, r: SlurmReservation) -> None:
        self._scontrol_reservation("create", r)

    def update_reservation(self, r: SlurmReservation) -> None:
        self._scontrol_reservation("update", r)

    def delete_reservation(self, name: str) -> None:
        proc = self._run([self._exe("scontrol"), "delete", f"ReservationName={name}"],
                         what="scontrol delete reservation")
        if proc.returncode != 0:
            raise BackendError(f"Slurm refused to delete reservation {name}: "
                               f"{(proc.stderr or proc.stdout).strip()}")

    # ------------------------------------------------------------------ accounts (sacctmgr)
    def _sacctmgr(self, *args: str) -> str:
        """Run ``sacctmgr`` (it talks to slurmdbd, not slurmctld)."""
        argv = with_prefix(self.command_prefix, [self._exe("sacctmgr"), *args])
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=max(self.timeout_s, _SACCTMGR_TIMEOUT_S),
                env=self._env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable("sacctmgr did not answer (is slurmdbd running?)") from exc
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            if "connection refused" in err.lower() or "unable to" in err.lower():
                raise BackendUnavailable(
                    f"slurmdbd unreachable: {err}",
                    hint="Check slurmdbd (`sacctmgr show cluster`).",
                )
            raise BackendError(f"sacctmgr {' '.join(args[:3])} failed: {err}")
        return proc.stdout

    def accounts(self, names: Sequence[str]) -> dict[str, SlurmAccount]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        limits: dict[str, int | None] = {}
        users: dict[str, set[str]] = {}
        for line in self._sacctmgr(
            "--noheader",
            "--parsable2",
            "show",
            "associations",
            f"accounts={','.join(wanted)}",
            "format=Account,User,GrpTRESMins",
        ).splitlines():
            parts = line.split("|")
            if len(parts) < 3 or parts[0] not in wanted:
                continue
            account, user, tres = parts[0], parts[1], parts[2]
            if user:
                users.setdefault(account, set()).add(user)
            else:
                limits[account] = gpu_minutes_from_tres(tres)
                users.setdefault(account, set())
        descriptions: dict[str, str] = {}
        for line in self._sacctmgr(
            "--noheader",
            "--parsable2",
            "show",
            "account",
            ",".join(wanted),
            "format=Account,Description",
        ).splitlines():
            account, _, desc = line.partition("|")
            descriptions[account] = desc
        return {
            a: SlurmAccount(a, descriptions.get(a, ""), limits.get(a), frozenset(u))
            for a, u in users.items()
        }

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
        self._sacctmgr(
            "-i",
            "add",
            "account",
            name,
            f"Description={description}",
            f"Organization={organization}",
            f"GrpTRESMins=gres/gpu={int(gpu_minutes)}",
            f"QOS={','.join(qos)}",
            f"DefaultQOS={default_qos}",
        )

    def _modify_account(self, name: str, setting: str) -> None:
        self._sacctmgr("-i", "modify", "account", "where", f"name={name}", "set", setting)

    def set_account_gpu_minutes(self, name: str, gpu_minutes: int) -> None:
        self._modify_account(name, f"GrpTRESMins=gres/gpu={int(gpu_minutes)}")

    def set_account_description(self, name: str, description: str) -> None:
        self._modify_account(name, f"Description={description}")

    def reset_account_usage(self, name: str) -> None:
        self._modify_account(name, "RawUsage=0")

    def add_user(self, user: str, account: str) -> None:
        self._sacctmgr("-i", "add", "user", user, f"account={account}")

    def remove_user(self, user: str, account: str) -> None:
        self._sacctmgr("-i", "delete", "user", "where", f"name={user}", f"account={account}")

    def qos_priorities(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self._sacctmgr(
            "--noheader", "--parsable2", "show", "qos", "format=Name,Priority"
        ).splitlines():
            name, _, prio = line.partition("|")
            if name:
                out[name] = int(prio) if prio.lstrip("-").isdigit() else 0
        return out

    def set_qos_priority(self, name: str, priority: int) -> None:
        if name in self.qos_priorities():
            self._sacctmgr(
                "-i", "modify", "qos", "where", f"name={name}", "set", f"Priority={int(priority)}"
            )
        else:
            self._sacctmgr("-i", "add", "qos", name, f"Priority={int(priority)}")

    def close(self) -> None:
        return None


def _with_exit(job: SlurmJob, code: int | None) -> SlurmJob:
    from dataclasses import replace

    return replace(job, exit_code=code)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# ---------------------------------------------------------------------- reservations
_SLURM_TIME = "%Y-%m-%dT%H:%M:%S"


def parse_gpu_gres(gres: str) -> tuple[int, str]:
    """``gpu:a100:4`` (or ``gpu:4(S:0-1)``, several items) -> (4, "a100")."""
    count, gtype = 0, "gpu"
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            count += int(parts[-1])
            if len(parts) == 3:
                gtype = parts[1]
    return count, gtype


def _names(value: str) -> tuple[str, ...]:
    return () if value in ("", "(null)") else tuple(sorted(value.split(",")))


def parse_reservation(line: str) -> SlurmReservation | None:
    """One line of ``scontrol show reservation -o`` (times in UTC: run with TZ=UTC)."""
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    name = fields.get("ReservationName")
    if not name:
        return None
    def at(key: str) -> datetime:
        return datetime.strptime(fields[key], _SLURM_TIME).replace(tzinfo=UTC)

    flags = set(fields.get("Flags", "").split(","))
    nodes = fields.get("Nodes", "")
    return SlurmReservation(
        name=name, start=at("StartTime"), end=at("EndTime"),
        nodes=tuple(sorted(expand_hostlist(nodes))) if nodes not in ("", "(null)") else (),
        accounts=_names(fields.get("Accounts", "")), maintenance="MAINT" in flags)


def reservation_args(r: SlurmReservation, *, update: bool = False) -> list[str]:
    """``scontrol create|update reservation`` arguments (one argv item each); an update
    changes the window, nodes and accounts (a change of kind is a delete and create)."""
    start = ("now" if r.start <= datetime.now(UTC)  # Slurm refuses a start in the past
             else r.start.astimezone(UTC).strftime(_SLURM_TIME))
    args = [f"ReservationName={r.name}", f"StartTime={start}",
            f"EndTime={r.end.astimezone(UTC).strftime(_SLURM_TIME)}",
            f"Nodes={','.join(r.nodes)}"]
    if r.maintenance:
        if not update:
            args += ["Users=root", "Flags=MAINT,IGNORE_JOBS"]
    else:
        args.append(f"Accounts={','.join(r.accounts)}")
    return args
