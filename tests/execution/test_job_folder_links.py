"""A job's folder belongs to the job's account, so an earlier run can plant links, hard
links or FIFOs where the server will later create, chown, write or read (a requeued
attempt's folder, its stdout.log, the Slurm script). The server never follows them: a
system file is never chowned, written or shown to the user as "the log"."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from factories import T0, bearer, make_project, make_token, make_user
from rechenwerk.execution.base import BackendJobState, GpuSlice, LaunchRequest
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.job_files import (
    UnsafeJobPath,
    open_dir_chain,
    open_job_file,
    write_new_job_file,
)
from rechenwerk.jobs.logs import read_log
from rechenwerk.jobs.models import Job
from waiting import DEADLINE_S, wait_for

SECRET = "server-secret-do-not-show\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.key"
    path.write_text(SECRET)
    return path


def test_a_planted_attempt_folder_link_is_refused_not_followed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    elsewhere = tmp_path / "system-dir"
    elsewhere.mkdir()
    (logs / "7").mkdir(parents=True)
    (logs / "7" / "2").symlink_to(elsewhere)  # planted by attempt 1 before a requeue
    before = elsewhere.stat()
    with pytest.raises(UnsafeJobPath, match="a link or not a folder"), \
            open_dir_chain(logs, ("7", "2"), create=True, owner=(os.getuid(), os.getgid()),
                           mode=0o700):
        pass
    after = elsewhere.stat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    with pytest.raises(UnsafeJobPath, match="not a plain folder name"), \
            open_dir_chain(logs, ("7", ".."), create=True):
        pass


def test_links_fifos_and_hard_links_are_not_opened(tmp_path: Path, secret: Path) -> None:
    attempt = tmp_path / "logs" / "7" / "1"
    attempt.mkdir(parents=True)
    (attempt / "stdout.log").symlink_to(secret)
    with pytest.raises(UnsafeJobPath, match="symbolic link"):
        open_job_file(tmp_path / "logs", ("7", "1"), "stdout.log")
    with pytest.raises(UnsafeJobPath, match="symbolic link"):
        open_job_file(tmp_path / "logs", ("7", "1"), "stdout.log", append=True)
    assert secret.read_text() == SECRET  # nothing appended through the link
    os.link(secret, attempt / "stderr.log")
    with pytest.raises(UnsafeJobPath, match="hard link"):
        open_job_file(tmp_path / "logs", ("7", "1"), "stderr.log")
    os.mkfifo(attempt / "fifo.log")
    done = threading.Event()

    def read_fifo() -> None:
        with pytest.raises(UnsafeJobPath, match="not a regular file"):
            open_job_file(tmp_path / "logs", ("7", "1"), "fifo.log")
        done.set()

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(DEADLINE_S)
    assert done.is_set(), "opening a FIFO in a job folder blocked the server"


def test_a_new_file_replaces_a_planted_link_instead_of_writing_through(
        tmp_path: Path, secret: Path) -> None:
    attempt = tmp_path / "logs" / "7" / "1"
    attempt.mkdir(parents=True)
    (attempt / "job-script.1").symlink_to(secret)
    path = write_new_job_file(tmp_path / "logs", ("7", "1"), "job-script.1", b"echo hi\n",
                              mode=0o700)
    assert secret.read_text() == SECRET
    assert not path.is_symlink() and path.read_text() == "echo hi\n"
    assert path.stat().st_mode & 0o777 == 0o700


def _job(session: Session) -> tuple[Job, object]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    job = Job(project_id=project.id, user_id=pi.id, name="leaky", spec={}, state="running",
              qos="normal", requested_qos="normal", over_budget=False, gpus=1,
              walltime_s=60, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
              started_at=T0, updated_at=T0)
    session.add(job)
    session.commit()
    return job, pi


def test_a_log_that_links_to_a_secret_is_refused(session: Session, tmp_path: Path,
                                                 secret: Path) -> None:
    job, pi = _job(session)
    attempt = tmp_path / "logs" / str(job.id) / "1"
    attempt.mkdir(parents=True)
    (attempt / "stdout.log").symlink_to(secret)
    (attempt / "stderr.log").write_text("real output\n")
    with pytest.raises(UnsafeJobPath) as exc:
        read_log(session, pi, job.id, data_dir=tmp_path, stream="stdout")  # type: ignore[arg-type]
    assert "does not follow links" in exc.value.message and SECRET not in exc.value.message
    chunk = read_log(session, pi, job.id, data_dir=tmp_path, stream="stderr")  # type: ignore[arg-type]
    assert chunk.data == "real output\n"


def test_the_api_answers_a_planted_log_link_with_a_problem(
        api_client: object, session: Session, tmp_path: Path, secret: Path) -> None:
    job, pi = _job(session)
    token = make_token(session, pi)  # type: ignore[arg-type]
    session.commit()
    attempt = tmp_path / "var" / "logs" / str(job.id) / "1"  # the api_client's data_dir
    attempt.mkdir(parents=True)
    (attempt / "stdout.log").symlink_to(secret)
    r = api_client.get(f"/api/v1/jobs/{job.id}/logs", headers=bearer(token))  # type: ignore[attr-defined]
    assert r.status_code == 409, r.text
    assert SECRET.strip() not in r.text and "does not follow links" in r.json()["detail"]


def test_a_requeued_attempt_never_writes_through_a_planted_log_link(
        tmp_path: Path, secret: Path) -> None:
    ex = LocalExecutor(tmp_path / "data", cluster="1x8:A100-80GB", kill_grace_s=1.0)
    logs = tmp_path / "logs"
    (logs / "9" / "2").mkdir(parents=True)
    (logs / "9" / "2" / "stdout.log").symlink_to(secret)  # left by attempt 1
    request = LaunchRequest(
        job_id="9", attempt=2, name="job-9", project="p1", user="alice",
        command=(sys.executable, "-c", "print('pwned')"), script=None,
        workdir=str(tmp_path), env={}, gpus=1, nodes=1, gpus_per_node=1, walltime_s=30,
        qos="normal", log_dir=str(logs / "9" / "2"),
        placement=(GpuSlice("node01", (0,)),))
    handle = ex.submit(request)
    status = wait_for(lambda: (lambda st: st if st.state not in (
        BackendJobState.PENDING, BackendJobState.RUNNING) else None)(ex.poll([handle])[handle]),
        "the attempt to end", DEADLINE_S)
    assert status.state == BackendJobState.FAILED
    assert "does not follow links" in (status.reason or "")
    assert secret.read_text() == SECRET


def test_the_job_page_shows_why_a_planted_log_is_not_shown(
        api_client: object, session: Session, tmp_path: Path, secret: Path) -> None:
    import re

    from rechenwerk.access.security import hash_password

    job, pi = _job(session)
    pi.password_hash = hash_password("correct-horse-battery")  # type: ignore[attr-defined]
    session.commit()
    attempt = tmp_path / "var" / "logs" / str(job.id) / "1"
    attempt.mkdir(parents=True)
    (attempt / "stdout.log").symlink_to(secret)
    (attempt / "stderr.log").write_text("real output\n")
    client: object = api_client
    page = client.get("/login")  # type: ignore[attr-defined]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    client.post("/login", data={"username": pi.username,  # type: ignore[attr-defined]
                                "password": "correct-horse-battery",
                                "csrf_token": token.group(1)})
    html = client.get(f"/jobs/{job.id}").text  # type: ignore[attr-defined]
    assert 'data-testid="stdout-error"' in html and SECRET.strip() not in html
    assert "real output" in html
