"""The Slurm execution backend: Slurm queues, places and runs; Rechenwerk submits,
tracks (squeue/sacct or slurmrestd) and accounts. The opaque handle is the Slurm job id."""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path

from rechenwerk.errors import BackendError, BackendUnavailable
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    LaunchRequest,
    ReconcileReport,
)
from rechenwerk.execution.slurm.script import build_submit_spec, user_script_path
from rechenwerk.execution.slurm.types import SlurmJob, SlurmTransport

log = logging.getLogger(__name__)

# Slurm's pending/ending reasons that need words for people (slurm.h job_state_reason).
REASON_TEXT: dict[str, str] = {
    "AssocGrpGRESMinutes": "the project's GPU-hour budget in Slurm (GrpTRESMins gres/gpu) "
    "does not cover this job",
    "AssocGrpGRESRunMinutes": "the project's running GPU-minutes limit in Slurm is reached",
    "AssocGrpGRES": "the project's concurrent GPU limit in Slurm is reached",
    "AssocMaxWallDurationPerJobLimit": "the walltime exceeds the project's limit in Slurm",
    "Resources": "waiting for free GPUs/nodes in Slurm",
    "Priority": "jobs with higher priority are ahead in Slurm's queue",
    "QOSMaxWallDurationPerJobLimit": "the walltime exceeds the QOS limit",
    "InvalidAccount": "the project's Slurm account is missing or the user is not in it",
    "InvalidQOS": "the QOS is not allowed for the project in Slurm",
    "ReqNodeNotAvail": "requested nodes are down or drained",
    "NodeDown": "a node of the job is down",
    "BeginTime": "requeued; waiting for its earliest start time",
    "JobHeldAdmin": "held by an administrator",
    "JobHeldUser": "held by the user",
    "Dependency": "waiting for a dependency",
}


def explain_reason(reason: str | None) -> str | None:
    """``"AssocGrpGRESMinutes"`` -> ``"AssocGrpGRESMinutes: the project's ..."``."""
    if not reason:
        return None
    text = REASON_TEXT.get(reason)
    return f"{reason}: {text}" if text else reason


def to_status(job: SlurmJob, handle: str | None = None) -> BackendJobStatus:
    state = job.backend_state
    return BackendJobStatus(
        handle=handle or job.job_id,
        state=state,
        started_at=job.start_time,
        ended_at=job.end_time
        if state not in (BackendJobState.PENDING, BackendJobState.RUNNING)
        else None,
        exit_code=job.exit_code,
        reason=explain_reason(job.reason),
        allocated_gpus=job.gpus,
        nodes=job.nodes,
        account=job.account or None,
        name=job.name or None,
        user=job.user or None,
    )


class SlurmBackend:
    name = "slurm"
    capabilities = BackendCapabilities(
        schedules_itself=True,
        multi_node=True,
        graceful_preemption=False,
        imports_foreign_jobs=True,
    )

    def __init__(
        self,
        transport: SlurmTransport,
        *,
        partition: str = "debug",
        submit_as_user: bool = True,
        qos_map: Mapping[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.partition = partition
        self.submit_as_user = submit_as_user
        self.qos_map = dict(qos_map or {})

    # ------------------------------------------------------------------ protocol
    def submit(self, request: LaunchRequest) -> str:
        spec = build_submit_spec(
            request,
            partition=self.partition,
            qos_map=self.qos_map,
            submit_as_user=self.submit_as_user,
        )
        self._prepare_files(request, spec.user)
        return self.transport.submit(spec)

    def cancel(self, handle: str) -> None:
        self.transport.cancel(_job_id(handle))

    def preempt(self, handle: str) -> None:
        # scancel: SIGTERM to every step, SIGKILL after Slurm's KillWait.
        self.transport.cancel(_job_id(handle))

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        """Statuses of ``handles``. While Slurm cannot be reached this returns no status
        at all (jobs keep their state; the next poll catches up) instead of raising, so
        the scheduler loop still hands new jobs over and they wait with the reason."""
        try:
            return self._poll(handles)
        except BackendUnavailable as exc:
            log.warning("Slurm poll skipped: %s", exc.message)
            return {}

    def _poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        if not handles:
            return {}
        live = {j.job_id: j for j in self.transport.live_jobs()}
        out: dict[str, BackendJobStatus] = {}
        missing: list[str] = []
        for handle in handles:
            job = live.get(_job_id(handle))
            if job is None:
                missing.append(handle)
            else:
                out[handle] = to_status(job, handle)
        if missing:
            found = {
                j.job_id: j
                for j in self.transport.accounted_jobs(job_ids=[_job_id(h) for h in missing])
            }
            for handle in missing:
                job = found.get(_job_id(handle))
                out[handle] = (
                    to_status(job, handle)
                    if job is not None
                    else BackendJobStatus(handle=handle, state=BackendJobState.UNKNOWN)
                )
        return out

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        # Unlike poll, an unreachable Slurm raises here: reporting nothing would make
        # the caller believe every job was lost.
        known = self._poll(handles)
        ours = {_job_id(h) for h in handles}
        foreign = [
            to_status(j)
            for j in self.transport.live_jobs()
            if j.job_id not in ours and not j.comment.startswith("rechenwerk:")
        ]
        return ReconcileReport(known=known, foreign=foreign)

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ helpers
    def _prepare_files(self, request: LaunchRequest, user: str | None) -> None:
        """Create the log directory (owned by the job's user) and the user's script file."""
        log_dir = Path(request.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        uid = gid = -1
        if user is not None and os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                raise BackendError(
                    f"user {user!r} does not exist on this Slurm submit host",
                    hint="Create the Unix account (jobs run as their user), or set "
                    "RECHENWERK_SLURM_SUBMIT_AS=service.",
                ) from None
            uid, gid = pw.pw_uid, pw.pw_gid
            os.chown(log_dir, uid, gid)
        if request.script is not None and not request.command:
            path = user_script_path(request)
            path.write_text(request.script)
            path.chmod(0o700)
            if uid >= 0:
                os.chown(path, uid, gid)


def _job_id(handle: str) -> str:
    jid = handle.split(";", 1)[0].strip()
    if not jid.isdigit():
        raise BackendError(
            f"{handle!r} is not a Slurm job handle",
            hint="Slurm handles are job ids such as '1234'.",
        )
    return jid
