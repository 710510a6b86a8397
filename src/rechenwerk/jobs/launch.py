"""Handing jobs persisted as STARTING to the backend, in one place.

The order is what makes a crash harmless: the decision (STARTING, placement, attempt) is
committed first, then the backend is called, then its handle is recorded. A launch that
fails puts the job back in the queue with the reason; a server that died in between
launches the same attempt again at its next start, which backends treat idempotently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.access.models import Project, User
from rechenwerk.clock import Clock
from rechenwerk.errors import RechenwerkError
from rechenwerk.execution.base import (
    ArraySubmitting,
    ArrayTask,
    ExecutionBackend,
    GpuSlice,
    LaunchRequest,
)
from rechenwerk.job_files import open_dir_chain
from rechenwerk.jobs.dependencies import backend_dependencies
from rechenwerk.jobs.logs import log_dir_for
from rechenwerk.jobs.models import Job, JobArray
from rechenwerk.jobs.progress import requeue_failed_launch
from rechenwerk.jobs.states import JobState
from rechenwerk.jobs.transitions import transition
from rechenwerk.scheduling.arrays import MAX_ARRAY_INDEX, parse_array
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.scheduler")


@lru_cache(maxsize=64)
def _array_bounds(expression: str) -> tuple[int, int, int]:
    """(count, min, max) of an array's indices: parsed once per array, not per task."""
    indices = parse_array(expression, max_tasks=MAX_ARRAY_INDEX + 1).indices  # stored: valid
    return len(indices), indices[0], indices[-1]


def array_task(session: Session, job: Job) -> ArrayTask | None:
    """What a task of an array is told about its array (None: not a task)."""
    if job.array_job_id is None or job.array_task_id is None:
        return None
    info = session.get(JobArray, job.array_job_id)
    if info is None:
        return None
    count, low, high = _array_bounds(info.expression)
    return ArrayTask(str(job.array_job_id), job.array_task_id, count, low, high,
                     info.task_limit)


class Launcher:
    def __init__(self, session_factory: sessionmaker[Session], backend: ExecutionBackend,
                 clock: Clock, data_dir: Path, *, cluster: str | None = None) -> None:
        self.session_factory = session_factory
        self.backend = backend
        # several clusters: the one this launcher's backend is (dependencies are
        # only that cluster's jobs); None: the centre's one backend
        self.cluster = cluster
        self.clock = clock
        self.data_dir = Path(data_dir)

    def request(self, session: Session, job: Job) -> LaunchRequest:
        """What the backend needs to run the job's current attempt (creates its log dir)."""
        spec = job.spec
        project = session.get(Project, job.project_id)
        user = session.get(User, job.user_id)
        log_dir = log_dir_for(self.data_dir, job.id, job.attempt)
        workdir = spec.get("workdir") or str(log_dir.parent)
        # <logs>/<job>/<attempt>: the job owns <job>, so an earlier run may have put a
        # link where this attempt's folder goes; never follow it (job_files.py)
        with open_dir_chain(self.data_dir / "logs", (str(job.id), str(job.attempt)),
                            create=True):
            pass
        placement = (
            tuple(GpuSlice(str(n), tuple(int(i) for i in idx)) for n, idx in job.placement)
            if job.placement else None
        )
        nodes = len(placement) if placement else (job.nodes or 1)
        command = spec.get("command")
        return LaunchRequest(
            job_id=str(job.id),
            attempt=job.attempt,
            name=job.name,
            project=project.slug if project else "?",
            user=user.username if user else "?",
            command=tuple(command) if command else None,
            script=spec.get("script"),
            workdir=workdir,
            env=dict(spec.get("env") or {}),
            gpus=job.gpus,
            nodes=nodes,
            gpus_per_node=job.gpus_per_node or max(1, job.gpus // max(1, nodes)),
            walltime_s=job.walltime_s,
            qos=job.qos,
            log_dir=str(log_dir),
            container_image=spec.get("container_image"),
            gpu_type=job.gpu_type,
            checkpoint_interval_s=spec.get("checkpoint_interval"),
            placement=placement,
            user_id=job.user_id,
            project_id=job.project_id,
            after=(backend_dependencies(session, job.id, self.backend.name, self.cluster)
                   if self.backend.capabilities.schedules_itself else ()),
            reservation=spec.get("reservation"),
            array=array_task(session, job),
        )

    def launch(self, job_ids: Sequence[int]) -> int:
        """Launch jobs already persisted as STARTING; record handles or revert. Returns how
        many the backend accepted."""
        ok = 0
        for job_id in job_ids:
            with session_scope(self.session_factory) as session:
                job = session.get(Job, job_id)
                if job is None or job.state != JobState.STARTING.value:
                    continue
                if job.cancel_requested_at is not None and job.backend_handle is None:
                    # Cancelled between placement and launch: never start it.
                    now = self.clock.now()
                    transition(session, job, JobState.CANCELLED, now=now,
                                       reason="cancelled before launch",
                                       values={"ended_at": now,
                                               "reason_code": "cancelled",
                                               "reason": "cancelled before launch"})
                    continue
                request = self.request(session, job)
            try:
                handle = self.backend.submit(request)
            except RechenwerkError as exc:
                self._requeue(job_id, f"launch failed: {exc.message}")
                log.warning("launch of job %s failed: %s", job_id, exc,
                            extra={"job_id": job_id})
                continue
            except Exception as exc:  # a backend bug must not strand the job in STARTING
                log.exception("launch of job %s failed", job_id, extra={"job_id": job_id})
                self._requeue(job_id, f"launch failed: {type(exc).__name__}: {exc}")
                continue
            with session_scope(self.session_factory) as session:
                session.execute(
                    update(Job).where(Job.id == job_id, Job.backend_handle.is_(None))
                    .values(backend_handle=handle, reason="launched")
                    .execution_options(synchronize_session=False)
                )
            log.info("launched job %s as %s", job_id, handle,
                     extra={"job_id": job_id, "handle": handle})
            ok += 1
        return ok

    def launch_array(self, job_ids: Sequence[int]) -> int:
        """Launch tasks of ONE array, persisted as STARTING, as one backend array where
        the backend has them (Slurm: one ``sbatch --array``), else one by one. All the
        tasks get their handles, or all go back to the queue with the reason."""
        backend = self.backend
        if not (backend.capabilities.job_arrays and isinstance(backend, ArraySubmitting)):
            return self.launch(job_ids)
        requests: list[LaunchRequest] = []
        with session_scope(self.session_factory) as session:
            for job in session.scalars(select(Job).where(Job.id.in_(list(job_ids)))
                                       .order_by(Job.array_task_id)):
                if job.state != JobState.STARTING.value or job.backend_handle is not None:
                    continue
                if job.cancel_requested_at is not None:
                    now = self.clock.now()
                    transition(session, job, JobState.CANCELLED, now=now,
                               reason="cancelled before launch",
                               values={"ended_at": now, "reason_code": "cancelled",
                                       "reason": "cancelled before launch"})
                    continue
                requests.append(self.request(session, job))
        if not requests:
            return 0
        try:
            handles = backend.submit_array(requests)
        except Exception as exc:  # refused as a whole: every task back to the queue
            message = exc.message if isinstance(exc, RechenwerkError) else (
                f"{type(exc).__name__}: {exc}")
            log.warning("launch of array tasks %s failed: %s",
                        ",".join(r.job_id for r in requests), message)
            for r in requests:
                self._requeue(int(r.job_id), f"launch failed: {message}")
            return 0
        with session_scope(self.session_factory) as session:
            session.connection().execute(
                update(Job.__table__)  # type: ignore[arg-type]
                .where(Job.__table__.c.id == bindparam("b_id"),
                       Job.__table__.c.backend_handle.is_(None))
                .values(backend_handle=bindparam("b_handle"), reason="launched"),
                [{"b_id": int(jid), "b_handle": h} for jid, h in handles.items()])
        log.info("launched %d array tasks as %s..", len(handles),
                 next(iter(handles.values()), "?"))
        return len(handles)

    def _requeue(self, job_id: int, reason: str) -> None:
        with session_scope(self.session_factory) as session:
            job = session.get(Job, job_id)
            if job is not None:
                requeue_failed_launch(session, job, now=self.clock.now(),
                                              reason=reason)
