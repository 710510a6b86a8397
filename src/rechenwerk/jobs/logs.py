"""Reading a job's stdout/stderr in chunks, with the same authorisation as the job itself."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.errors import InvalidInput
from rechenwerk.jobs import service
from rechenwerk.jobs.states import TERMINAL_STATES, JobState

MAX_LOG_CHUNK = 1 << 20  # 1 MiB per request


def log_dir_for(data_dir: Path, job_id: int, attempt: int) -> Path:
    """Where a run's stdout.log and stderr.log go: one folder per job and attempt."""
    return Path(data_dir) / "logs" / str(job_id) / str(attempt)

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class LogChunk:
    job_id: int
    attempt: int  # the run read (0: never started)
    latest_attempt: int
    stream: str
    offset: int
    next_offset: int  # continue from here; equals the file size when at the end
    size: int  # bytes in the log file now
    data: str
    state: str
    complete: bool  # the job has ended and everything was read: a follower may stop

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_log(
    session: Session,
    user: User,
    job_id: int,
    *,
    data_dir: Path,
    stream: Stream = "stdout",
    offset: int = 0,
    attempt: int | None = None,
    limit: int = MAX_LOG_CHUNK,
) -> LogChunk:
    """A chunk of the job's log from byte ``offset`` (members of its project; else 404)."""
    job = service.get_job(session, user, job_id)
    if attempt is not None and attempt > job.attempt:
        raise InvalidInput(
            f"job {job.id} has had {job.attempt} attempt(s)",
            field="attempt",
            hint="Omit --attempt for the latest run.",
        )
    run = attempt or job.attempt
    data = b""
    size = 0
    if run >= 1:
        path = log_dir_for(Path(data_dir), job.id, run) / f"{stream}.log"
        if path.is_file():
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(min(offset, size))
                data = fh.read(max(0, min(limit, MAX_LOG_CHUNK)))
    next_offset = min(offset, size) + len(data) if run >= 1 else offset
    complete = JobState(job.state) in TERMINAL_STATES and next_offset >= size
    return LogChunk(
        job_id=job.id,
        attempt=run,
        latest_attempt=job.attempt,
        stream=stream,
        offset=offset,
        next_offset=next_offset,
        size=size,
        data=data.decode("utf-8", errors="replace"),
        state=job.state,
        complete=complete,
    )
