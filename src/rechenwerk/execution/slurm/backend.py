"""The Slurm execution backend: Slurm queues, places and runs; Rechenwerk submits,
tracks (squeue/sacct or slurmrestd) and accounts. The opaque handle is the Slurm job id."""

from __future__ import annotations

import logging
import math
import os
import pwd
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.errors import BackendError, BackendUnavailable
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    BackendRun,
    LaunchRequest,
    NodeInventory,
    ReconcileReport,
)
from rechenwerk.execution.slurm.containers import parse_runtime
from rechenwerk.execution.slurm.script import (
    build_array_submit_spec,
    build_submit_spec,
    check_gpu_types,
    user_script_path,
)
from rechenwerk.execution.slurm.types import (
    SlurmJob,
    SlurmTransport,
    split_job_ref,
    task_indices,
)
from rechenwerk.job_files import open_dir_chain, write_new_job_file

log = logging.getLogger(__name__)
# How often slurmdbd is asked again for a requeued job's earlier run it has not recorded.
RUNS_RETRY_S = 5.0

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
    "DependencyNeverSatisfied": "a job it depends on ended so that it can never start",
    "JobArrayTaskLimit": "array task limit: the array's %N tasks are running",
}


def explain_reason(reason: str | None) -> str | None:
    """``"AssocGrpGRESMinutes"`` -> ``"AssocGrpGRESMinutes: the project's ..."``."""
    if not reason:
        return None
    text = REASON_TEXT.get(reason)
    return f"{reason}: {text}" if text else reason


def submitted_attempt(comment: str) -> int | None:
    """``rechenwerk:<job>.<attempt>`` -> the attempt the Slurm job was submitted as."""
    if not comment.startswith("rechenwerk:"):
        return None
    tail = comment.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _restarts(job: SlurmJob) -> int:
    """Slurm's restart count of the run the record describes. While a requeued run is
    still being stopped (COMPLETING: SIGTERM sent, KillWait running) restart_cnt has
    already risen, but that run is not over, so it is not counted yet (a later run
    finishing normally is COMPLETING too: counting it one lower changes nothing)."""
    if job.requeue_count > 0 and job.state.split(" ", 1)[0] == "COMPLETING":
        return job.requeue_count - 1
    return job.requeue_count


def _earlier_runs(job: SlurmJob, first: int, restarts: int) -> tuple[BackendRun, ...]:
    """The requeued runs of ``job`` as BackendRuns numbered from ``first``: from
    slurmdbd's records where present, otherwise only the latest one with the end Slurm
    implies (the requeue resets the job's submit time to when the run had stopped)."""
    runs = [
        BackendRun(first + i, r.start_time, r.end_time, r.state.split(" ", 1)[0],
                   measured=True)
        for i, r in enumerate(job.earlier_runs[:restarts])
    ]
    if len(runs) < restarts:  # slurmdbd has not recorded the run (yet)
        runs.append(BackendRun(first + restarts - 1, None, job.submit_time, "requeued"))
    return tuple(runs)


def to_status(job: SlurmJob, handle: str | None = None) -> BackendJobStatus:
    state = job.backend_state
    first = submitted_attempt(job.comment)
    restarts = _restarts(job)
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
        attempt=None if first is None else first + restarts,
        requeued_runs=() if first is None or not restarts
        else _earlier_runs(job, first, restarts),
        gpu_use=job.gpu_use,
    )


def _ended_while_requeued(job: SlurmJob, handle: str, cancelled: bool) -> BackendJobStatus:
    """slurmctld no longer has the job, and slurmdbd's last word on it is a run that Slurm
    requeued: the job ended while being requeued (cancelled while its run was stopping,
    COMPLETING) without slurmdbd recording that end, as both 22.05 and 24.11 may. The
    status is that run (its times from slurmdbd) and CANCELLED: the only way out of the
    queue Slurm leaves unrecorded here; no later run exists."""
    st = to_status(job, handle)
    reason = ("cancelled while Slurm requeued it" if cancelled else
              "cancelled outside Rechenwerk while Slurm requeued it (slurmdbd recorded "
              "the requeue, not the end)")
    return replace(st, state=BackendJobState.CANCELLED, ended_at=job.end_time,
                   reason=reason)


class SlurmBackend:
    name = "slurm"
    capabilities = BackendCapabilities(
        schedules_itself=True,
        multi_node=True,
        graceful_preemption=True,  # scontrol requeue: SIGTERM, KillWait, SIGKILL
        imports_foreign_jobs=True,
        job_arrays=True,  # one sbatch --array per array (submit_array)
    )

    def __init__(
        self,
        transport: SlurmTransport,
        *,
        partition: str = "debug",
        submit_as_user: bool = True,
        qos_map: Mapping[str, str] | None = None,
        gpu_types: Mapping[str, str] | None = None,
        container_runtime: str = "",
    ) -> None:
        self.transport = transport
        self.container_runtime = parse_runtime(container_runtime)
        self.partition = partition
        self.submit_as_user = submit_as_user
        self.qos_map = dict(qos_map or {})
        self.gpu_types = check_gpu_types(gpu_types or {})
        # slurmdbd's records of earlier runs of requeued jobs, by job id, with the
        # restart count they are complete for (read once per requeue, not every poll).
        self._runs: dict[str, tuple[int, tuple[SlurmJob, ...]]] = {}
        self._runs_tried: dict[str, float] = {}
        self._cancelled_tasks: dict[str, datetime] = {}  # array task handle -> when
        self._cancelled: set[str] = set()  # every handle cancelled here (poll's use)

    # ------------------------------------------------------------------ protocol
    def submit(self, request: LaunchRequest) -> str:
        spec = build_submit_spec(
            request,
            partition=self.partition,
            qos_map=self.qos_map,
            submit_as_user=self.submit_as_user,
            gpu_types=self.gpu_types,
            container_runtime=self.container_runtime,
        )
        self._prepare_files(request, spec.user)
        return self.transport.submit(spec)

    def submit_array(self, requests: Sequence[LaunchRequest]) -> dict[str, str]:
        """ONE ``sbatch --array`` for tasks of one Rechenwerk array (their ``array``
        set); returns each task's handle by its Rechenwerk job id: ``<slurm id>_<index>``,
        as Slurm names array tasks."""
        spec = build_array_submit_spec(
            requests, partition=self.partition, qos_map=self.qos_map,
            submit_as_user=self.submit_as_user, gpu_types=self.gpu_types,
            container_runtime=self.container_runtime)
        for r in requests:
            self._prepare_files(r, spec.user, script=r is requests[0])
        slurm_id = self.transport.submit(spec)
        return {r.job_id: f"{slurm_id}_{r.array.task_id}" for r in requests
                if r.array is not None}

    def expected_start(self, request: LaunchRequest) -> datetime | None:
        """When Slurm would start the job if it were submitted now (the CLI transport's
        ``sbatch --test-only``; None where the transport cannot tell). Nothing is
        submitted; BackendError when Slurm would refuse it."""
        estimate = getattr(self.transport, "expected_start", None)
        if estimate is None:
            return None
        spec = build_submit_spec(
            request, partition=self.partition, qos_map=self.qos_map,
            submit_as_user=self.submit_as_user, gpu_types=self.gpu_types,
            container_runtime=self.container_runtime)
        result: datetime | None = estimate(spec)
        return result

    def cancel(self, handle: str) -> None:
        self.transport.cancel(_job_id(handle))
        self._cancelled.add(handle)
        if "_" in handle:
            # A waiting array task that Slurm never started leaves no record at all
            # (not in squeue, not in sacct) once cancelled: remembered to report it.
            self._cancelled_tasks[handle] = datetime.now(UTC)

    def preempt(self, handle: str) -> None:
        """Requeue under the same job id (``scontrol requeue``; jobs are submitted with
        ``--requeue``): SIGTERM to the batch script and its steps so the job can
        checkpoint, SIGKILL after Slurm's KillWait (the grace period), then the job waits
        in Slurm's queue again. The next poll reports it PENDING with ``attempt + 1``
        and the stopped run, which the jobs service settles and shows as waiting."""
        self.transport.requeue(_job_id(handle))

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
        records = self.transport.live_jobs()
        live = {j.job_id: j for j in records}
        tasks = _array_tasks(records)
        self._attach_earlier_runs(live, {_job_id(h) for h in handles if "_" not in h})
        out: dict[str, BackendJobStatus] = {}
        missing: list[str] = []
        for handle in handles:
            job = (tasks.get(_job_id(handle)) if "_" in handle
                   else live.get(_job_id(handle)))
            if job is None:
                missing.append(handle)
            else:
                out[handle] = to_status(job, handle)
        if missing:
            found = {
                (f"{j.array_job_id}_{j.array_task_id}" if j.array_task_id is not None
                 else j.job_id): j
                for j in self.transport.accounted_jobs(job_ids=[_job_id(h) for h in missing])
            }
            for handle in missing:
                job = found.get(_job_id(handle))
                cancelled_at = self._cancelled_tasks.get(handle)
                out[handle] = (
                    _ended_while_requeued(job, handle, handle in self._cancelled)
                    if job is not None and job.state.split(" ", 1)[0] == "REQUEUED"
                    else to_status(job, handle)
                    if job is not None
                    else BackendJobStatus(handle=handle, state=BackendJobState.CANCELLED,
                                          ended_at=cancelled_at, reason="cancelled before "
                                          "Slurm started this array task")
                    if cancelled_at is not None
                    else BackendJobStatus(handle=handle, state=BackendJobState.UNKNOWN)
                )
        if len(self._cancelled_tasks) > 10_000:
            self._cancelled_tasks.clear()  # long settled; only the last ones matter
        if len(self._cancelled) > 10_000:
            self._cancelled.clear()
        return out

    def _attach_earlier_runs(self, live: dict[str, SlurmJob], wanted: set[str]) -> None:
        """Give requeued live jobs their earlier runs from slurmdbd. Read once per
        restart count; while slurmdbd lacks a run (it records asynchronously, or is
        down) retried at most every RUNS_RETRY_S, and the run is reported meanwhile with
        the times Slurm's live record implies."""
        now = time.monotonic()
        ask: list[str] = []
        for jid in wanted:
            job = live.get(jid)
            if job is None or job.requeue_count <= 0:
                continue
            cached = self._runs.get(jid)
            if cached is not None and cached[0] == job.requeue_count:
                live[jid] = replace(job, earlier_runs=cached[1])
            elif now - self._runs_tried.get(jid, -math.inf) >= RUNS_RETRY_S:
                ask.append(jid)
        if not ask:
            return
        for jid in ask:
            self._runs_tried[jid] = now
        try:
            records = {j.job_id: j for j in self.transport.accounted_jobs(job_ids=ask)}
        except BackendError as exc:  # BackendUnavailable included
            log.warning("slurmdbd records of requeued jobs unavailable: %s", exc.message)
            return
        for jid in ask:
            job, rec = live[jid], records.get(jid)
            # every run in order; the first restart_cnt of them are the requeued ones
            # (a requeued job that has not started again has no record of its own yet)
            every = (*rec.earlier_runs, rec) if rec is not None else ()
            runs = tuple(r for r in every[: job.requeue_count] if r.end_time is not None)
            if len(runs) == job.requeue_count:
                self._runs[jid] = (job.requeue_count, runs)
                self._runs_tried.pop(jid, None)
            live[jid] = replace(job, earlier_runs=runs)
        if len(self._runs) > 10_000:  # jobs long gone; the cache is only an optimisation
            self._runs.clear()

    def ping(self) -> None:
        """slurmctld answers (``scontrol ping`` or slurmrestd's ping)."""
        self.transport.ping()

    def inventory(self) -> tuple[NodeInventory, ...]:
        """Empty: Slurm places jobs on its own nodes (``rechenwerk slurm status`` lists
        them), so Rechenwerk's scheduling core has none to place on."""
        return ()

    def reservable_nodes(self) -> tuple[NodeInventory, ...]:
        """Slurm's nodes with their GPUs: what an advance reservation may hold."""
        return tuple(NodeInventory(n.name, n.gpus, n.gpu_type)
                     for n in self.transport.cluster_nodes())

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
    def _prepare_files(self, request: LaunchRequest, user: str | None, *,
                       script: bool = True) -> None:
        """Create the log directory (owned by the job's user) and the user's script file."""
        log_dir = Path(request.log_dir)
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
        owner = (uid, gid) if uid >= 0 else None
        if log_dir.parent.name == str(request.job_id):
            # <data>/logs/<job>/<attempt>: <job> is the default working directory
            # (checkpoints) and where a run Slurm requeued creates its own attempt's
            # folder, so both belong to the user; and so an earlier run may have planted
            # links in them: created, chowned and written without following any
            # (job_files.py), or root would chown or write through them.
            root = log_dir.parent.parent
            parts: tuple[str, ...] = (log_dir.parent.name, log_dir.name)
        else:
            root, parts = log_dir.parent, (log_dir.name,)
        root.mkdir(parents=True, exist_ok=True)
        with open_dir_chain(root, parts, create=True, owner=owner):
            pass
        if script and request.script is not None and not request.command:
            write_new_job_file(root, parts, user_script_path(request).name,
                               request.script.encode(), mode=0o700, owner=owner)


def _job_id(handle: str) -> str:
    """The Slurm job id of a handle: ``1234``, or ``1234_5`` for task 5 of array 1234."""
    jid = handle.split(";", 1)[0].strip()
    try:
        base, task = split_job_ref(jid)
    except BackendError:
        raise BackendError(
            f"{handle!r} is not a Slurm job handle",
            hint="Slurm handles are job ids such as '1234' (array tasks: '1234_5').",
        ) from None
    return base if task is None else f"{base}_{task}"


def _array_tasks(records: Sequence[SlurmJob]) -> dict[str, SlurmJob]:
    """Live records of array tasks by ``<array>_<index>``: a started task has a record of
    its own; the tasks not started yet share their array's record (its
    ``array_task_string``), which stands for each of them."""
    out: dict[str, SlurmJob] = {}
    for job in records:
        if not job.array_job_id:
            continue
        if job.array_task_id is not None:
            out[f"{job.array_job_id}_{job.array_task_id}"] = job
    for job in records:
        if job.array_job_id and job.array_task_id is None:
            for index in task_indices(job.array_task_string):
                out.setdefault(f"{job.array_job_id}_{index}", job)
    return out
