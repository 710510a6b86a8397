"""The scheduler loop's ``reasons`` phase: why each waiting job waits, stored so that the
API, the CLI and the portal show it.

Only changes are written (a cycle usually changes few, so 10,000 waiting jobs cost a
dictionary walk). A changed reason code is written at once. A message-only change (e.g.
"behind job 17" -> "behind job 18" after 17 started: every waiting job at once) is
written for a batch per cycle, and for all every ``REASON_REFRESH_S`` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.jobs.models import Job
from rechenwerk.jobs.snapshot import PendingReasons
from rechenwerk.jobs.states import JobState
from rechenwerk.scheduling.model import WaitReason
from rechenwerk.store.session import session_scope

REASON_MESSAGE_BATCH = 100
REASON_REFRESH_S = 30.0


class ReasonWriter:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self._refreshed_at = -math.inf  # time.monotonic() of the last full refresh

    def write(self, waiting: Iterable[tuple[str, WaitReason]], stored: PendingReasons,
              started: set[str]) -> tuple[int, int]:
        """Store the reasons that changed; returns (jobs waiting, reasons written)."""
        updates: list[dict[str, Any]] = []
        now_s = time.monotonic()
        refresh_all = now_s - self._refreshed_at >= REASON_REFRESH_S
        count = 0
        for job_id, why in waiting:
            if job_id in started:
                continue
            count += 1
            old = stored.get(int(job_id))
            if old is None:
                continue
            if old[0] != why.code or (old[1] != why.message and (
                    refresh_all or len(updates) < REASON_MESSAGE_BATCH)):
                updates.append({"b_id": int(job_id), "b_code": why.code,
                                "b_reason": why.message})
        if refresh_all:
            self._refreshed_at = now_s
        if updates:
            with session_scope(self.session_factory) as session:
                _write(session, updates)
        return count, len(updates)


def waiting_reasons(held_back: Mapping[str, WaitReason],
                    decided: Mapping[str, WaitReason]) -> list[tuple[str, WaitReason]]:
    """Starts held back for a preemption first, then the core's reasons."""
    return [*held_back.items(), *decided.items()]


def _write(session: Session, updates: list[dict[str, Any]]) -> None:
    """Set reason_code/reason of pending jobs; guarded by ``state = 'pending'`` so a job
    cancelled or started meanwhile keeps its own reason. One executemany (psycopg
    pipelines it; measured faster than ``UPDATE ... FROM (VALUES ...)`` here)."""
    table = Job.__table__
    session.connection().execute(
        update(table)  # type: ignore[arg-type]
        .where(table.c.id == bindparam("b_id"), table.c.state == JobState.PENDING.value)
        .values(reason_code=bindparam("b_code"), reason=bindparam("b_reason")),
        updates,
    )
