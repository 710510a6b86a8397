"""Reading a job's stdout/stderr in chunks, with the same authorisation as the job itself."""

from __future__ import annotations

import codecs
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.job_files import open_job_file
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job
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
    """A chunk of the job's log from byte ``offset`` (members of its project; else 404).
    A chunk never ends inside a UTF-8 character: a follower that continues at
    ``next_offset`` gets it whole with the next chunk."""
    job, run = _run_of(session, user, job_id, attempt)
    data = b""
    size = 0
    fd = _open(data_dir, job.id, run, stream)
    if fd is not None:
        with open(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(min(offset, size))
            data = fh.read(max(0, min(limit, MAX_LOG_CHUNK)))
    ended = JobState(job.state) in TERMINAL_STATES
    start = min(offset, size) if run >= 1 else offset
    at_end = start + len(data) >= size
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(data, final=ended and at_end)
    cut = len(decoder.getstate()[0])  # bytes of a character the chunk ends inside
    next_offset = start + len(data) - cut
    return LogChunk(
        job_id=job.id,
        attempt=run,
        latest_attempt=job.attempt,
        stream=stream,
        offset=offset,
        next_offset=next_offset,
        size=size,
        data=text,
        state=job.state,
        complete=ended and next_offset >= size,
    )


def _run_of(session: Session, user: User, job_id: int,
            attempt: int | None) -> tuple[Job, int]:
    job = service.get_job(session, user, job_id)
    if attempt is not None and (attempt < 1 or attempt > job.attempt):
        raise InvalidInput(
            f"job {job.id} has had {job.attempt} attempt(s); there is no attempt {attempt}",
            field="attempt",
            hint="Omit --attempt for the latest run.",
        )
    return job, attempt or job.attempt


def _open(data_dir: Path, job_id: int, run: int, stream: Stream) -> int | None:
    if run < 1:
        return None
    # the folder belongs to the job's account: never follow what it put there
    try:
        return open_job_file(Path(data_dir) / "logs", (str(job_id), str(run)),
                             f"{stream}.log")
    except FileNotFoundError:
        return None


def open_whole_log(
    session: Session, user: User, job_id: int, *, data_dir: Path, stream: Stream,
    attempt: int | None = None,
) -> tuple[BinaryIO, str]:
    """The whole log of a run, open for reading, and a file name for its download
    (members of its project; else 404; 404 too while the run has written nothing)."""
    job, run = _run_of(session, user, job_id, attempt)
    fd = _open(data_dir, job.id, run, stream)
    if fd is None:
        raise NotFound(f"job {job.id} has no {stream} log yet" + (
            "" if run >= 1 else ": it has not started"), field="stream")
    return open(fd, "rb"), f"job-{job.id}-attempt-{run}-{stream}.log"
