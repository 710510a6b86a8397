"""The scheduler loop's ``apply`` phase: the core's decision made real.

Preemptions first (SIGTERM now; the job is requeued when the backend reports it stopped,
so its GPUs are never booked twice), then starts: persisted as STARTING with the
placement and committed, THEN launched (``launch.Launcher``). A start on GPUs that a
preempted job still holds (it is checkpointing) waits until that job has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.clock import Clock
from rechenwerk.errors import BackendError
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.jobs.launch import Launcher
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.states import JobState
from rechenwerk.jobs.transitions import transition
from rechenwerk.scheduling.model import Decision, Placement, Start, WaitReason
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.scheduler")


@dataclass(slots=True)
class Applied:
    """What the phase did; ``held_back`` are starts that wait for a preempted job."""

    preempted: int = 0
    started: int = 0
    launch_failed: int = 0
    started_ids: set[str] = field(default_factory=set)
    held_back: dict[str, WaitReason] = field(default_factory=dict)


class DecisionApplier:
    def __init__(self, session_factory: sessionmaker[Session], backend: ExecutionBackend,
                 clock: Clock, launcher: Launcher) -> None:
        self.session_factory = session_factory
        self.backend = backend
        self.clock = clock
        self.launcher = launcher

    def apply(self, decision: Decision, running: Mapping[str, Placement]) -> Applied:
        out = Applied()
        if decision.preemptions:
            self._preempt(decision, out)
        starts = self._hold_back(decision, running, out)
        if starts:
            ids = self._persist_starts(starts)
            launched = self.launcher.launch(ids)
            out.started += launched
            out.launch_failed += len(ids) - launched
        out.started_ids = {s.job_id for s in starts}
        return out

    def _preempt(self, decision: Decision, out: Applied) -> None:
        with session_scope(self.session_factory) as session:
            for pre in decision.preemptions:
                job = session.get(Job, int(pre.job_id))
                if job is None or not job.backend_handle:
                    continue
                try:
                    self.backend.preempt(job.backend_handle)
                    out.preempted += 1
                except BackendError as exc:
                    log.warning("preempting job %s failed: %s", job.id, exc,
                                extra={"job_id": job.id})
                    continue
                if job.reason_code != "preempting":
                    job.reason_code, job.reason = "preempting", pre.reason

    @staticmethod
    def _hold_back(decision: Decision, running: Mapping[str, Placement],
                   out: Applied) -> list[Start]:
        """The starts that may go now; the others wait for their GPUs' preempted jobs."""
        draining: dict[tuple[str, int], str] = {}
        for pre in decision.preemptions:
            for node, idx in running.get(pre.job_id, ()):
                for i in idx:
                    draining[(node, i)] = pre.job_id
        if not draining:
            return list(decision.starts)
        starts: list[Start] = []
        for st in decision.starts:
            victims = sorted({draining[(n, i)] for n, idx in st.placement for i in idx
                              if (n, i) in draining})
            if victims:
                out.held_back[st.job_id] = WaitReason(
                    "preemption", "waiting for preempted job(s) " + ", ".join(victims)
                    + " to stop (SIGTERM sent; checkpointing)")
            else:
                starts.append(st)
        return starts

    def _persist_starts(self, starts: list[Start]) -> list[int]:
        now = self.clock.now()
        ids: list[int] = []
        with session_scope(self.session_factory) as session:
            for st in starts:
                job = session.get(Job, int(st.job_id))
                if job is None:
                    continue
                placement = [[node, list(idx)] for node, idx in st.placement]
                where = ", ".join(f"{n}:{','.join(map(str, i))}" for n, i in st.placement)
                if transition(session, job, JobState.STARTING, now=now,
                                      reason="placed on " + where,
                                      values={"placement": placement,
                                              "attempt": job.attempt + 1,
                                              "backend": self.backend.name,
                                              "backend_handle": None,
                                              "reason_code": "starting",
                                              "reason": "launching"}):
                    ids.append(job.id)
        return ids
