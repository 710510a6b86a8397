"""The forecast companion of the scheduler loop: when will each waiting job start?

Every ``forecast_interval_s`` the leader's loop hands its latest snapshot (immutable) to
this companion's thread, which runs the twin forward (``scheduling/forecast.py``: the
policy's scheduler; each job runs the median share of its walltime that its project's
recent jobs ran, ``run_fractions``, or to its limit without such a history) and stores
each pending job's expected start in ``jobs.expected_start_at``. On a replay of Philly
with walltimes 1.2-3x the run times, the history cut the median error 6x against
"every job runs to its limit" (docs/benchmarks.md). The loop never waits for it: a
forecast of 10,000 jobs costs seconds, a cycle must not. Only forecasts that moved by
more than ``MIN_CHANGE_S`` are written, so a quiet queue costs no writes.

Backends that schedule themselves (Slurm) take no snapshot; their jobs get no forecast
here (Slurm's own ``squeue --start`` answers that).
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.access.models import Project
from rechenwerk.clock import ensure_utc
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.states import JobState
from rechenwerk.scheduling.forecast import forecast_starts
from rechenwerk.scheduling.model import Snapshot
from rechenwerk.scheduling.policies import Policy
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.forecast")

MIN_CHANGE_S = 30.0  # a forecast that moved less than this is not rewritten
MAX_CPU_SHARE = 0.2  # of the wall time, for forecasts (they share the loop's GIL)
# The history a project's run/walltime share is taken from.
HISTORY_JOBS, HISTORY_MIN_JOBS, HISTORY_DAYS, HISTORY_ROWS = 100, 5, 30, 20_000
_ENDED_BY_ITSELF = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.TIMEOUT.value)


@dataclass(frozen=True, slots=True)
class ForecastStats:
    jobs: int  # pending jobs forecast
    placed: int  # of those, with a start within the horizon
    written: int  # rows updated
    cycles: int  # scheduler cycles of the run
    seconds: float  # wall time of the run and its writes


def run_fractions(session: Session, now: datetime) -> dict[str, float]:
    """By project slug: the median share of its walltime the project's last
    ``HISTORY_JOBS`` finished jobs ran (of the last ``HISTORY_DAYS`` days; at least
    ``HISTORY_MIN_JOBS`` of them, else the project's jobs are forecast to their limit).
    Cancelled and preempted runs say nothing about how long a job needs: left out."""
    rows = session.execute(
        select(Project.slug, Job.started_at, Job.ended_at, Job.walltime_s)
        .join(Project, Project.id == Job.project_id)
        .where(Job.state.in_(_ENDED_BY_ITSELF), Job.started_at.is_not(None),
               Job.ended_at >= now - timedelta(days=HISTORY_DAYS), Job.walltime_s > 0)
        .order_by(Job.ended_at.desc()).limit(HISTORY_ROWS)
    )
    shares: dict[str, list[float]] = {}
    for slug, started, ended, walltime in rows:
        got = shares.setdefault(slug, [])
        if len(got) < HISTORY_JOBS and started is not None and ended is not None:
            ran = (ensure_utc(ended) - ensure_utc(started)).total_seconds()
            got.append(min(1.0, max(0.0, ran) / walltime))
    return {slug: statistics.median(v) for slug, v in shares.items()
            if len(v) >= HISTORY_MIN_JOBS}


class ForecastCompanion:
    def __init__(self, session_factory: sessionmaker[Session], policy: Policy, *,
                 interval_s: float, horizon_s: float, use_history: bool = True) -> None:
        self.session_factory = session_factory
        self.use_history = use_history
        self.policy = policy
        self.interval_s = float(interval_s)
        self.horizon_s = float(horizon_s)
        self._written: dict[int, float | None] = {}  # what is stored, by job id
        self._due = -math.inf  # time.monotonic() of the next forecast
        self._latest: Snapshot | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: ForecastStats | None = None
        self.last_error: str | None = None

    def offer(self, snap: Snapshot) -> None:
        """The loop's latest snapshot; taken when a forecast is due (never blocks)."""
        if self.interval_s <= 0:
            return
        now = time.monotonic()
        if now < self._due:
            return
        self._due = self.next_due(now)
        with self._lock:
            self._latest = snap
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rechenwerk-forecast",
                                            daemon=True)
            self._thread.start()
        self._ready.set()

    def next_due(self, now: float) -> float:
        """When the next forecast is due: a forecast of a large queue costs seconds of
        CPU in the server's process (12 s at 10,000 pending jobs x 1,000 nodes,
        docs/benchmarks.md), so at most ``MAX_CPU_SHARE`` of the time goes to it."""
        last = self.last.seconds if self.last is not None else 0.0
        return now + max(self.interval_s, last / MAX_CPU_SHARE)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._ready.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._ready.wait()
            self._ready.clear()
            with self._lock:
                snap, self._latest = self._latest, None
            if snap is None or self._stop.is_set():
                continue
            try:
                self.run(snap)
                self.last_error = None
            except Exception as exc:  # the next offer retries; the loop goes on
                log.exception("forecast failed")
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def run(self, snap: Snapshot) -> ForecastStats:
        """Forecast ``snap`` and store what changed (what the thread does; tests call it)."""
        t0 = time.perf_counter()
        fractions = None
        if self.use_history:
            with session_scope(self.session_factory) as session:
                fractions = run_fractions(session, datetime.fromtimestamp(snap.now, UTC))
        forecast = forecast_starts(self.policy, snap, horizon_s=self.horizon_s,
                                   run_fraction=fractions)
        updates: list[dict[str, Any]] = []
        written = self._written
        seen: set[int] = set()
        for job in snap.pending:
            jid = int(job.job_id)
            seen.add(jid)
            start = forecast.start_of(job.job_id)
            old = written.get(jid, math.nan)  # nan: never written by this process
            if start is None:
                changed = old is not None
            else:
                changed = old is None or not abs(start - old) < MIN_CHANGE_S
            if changed:
                updates.append({"b_id": jid, "b_at": None if start is None
                                else datetime.fromtimestamp(start, UTC)})
                written[jid] = start
        for jid in set(written) - seen:
            del written[jid]
        if updates:
            with session_scope(self.session_factory) as session:
                table = Job.__table__
                session.connection().execute(
                    update(table)  # type: ignore[arg-type]
                    .where(table.c.id == bindparam("b_id"),
                           table.c.state == JobState.PENDING.value)
                    .values(expected_start_at=bindparam("b_at")),
                    updates,
                )
        stats = ForecastStats(jobs=len(snap.pending), placed=len(forecast.starts),
                              written=len(updates), cycles=forecast.cycles,
                              seconds=time.perf_counter() - t0)
        self.last = stats
        log.debug("forecast: %d pending, %d placed, %d written, %d cycles, %.3f s",
                  stats.jobs, stats.placed, stats.written, stats.cycles, stats.seconds)
        return stats
