"""The job page's log endpoints without a browser: chunks for the follower (never ending
inside a UTF-8 character), the whole-log download, and who may read them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_project, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.access.models import User
from rechenwerk.jobs.logs import read_log
from rechenwerk.jobs.models import Job


@pytest.fixture
def job(session: Session, tmp_path: Path) -> Job:
    pi = make_user(session, username="pia", password_hash=_hash())
    make_user(session, username="eve", password_hash=_hash())
    project = make_project(session, pi=pi)
    job = Job(project_id=project.id, user_id=pi.id, name="train", spec={}, state="running",
              qos="normal", requested_qos="normal", over_budget=False, gpus=1,
              walltime_s=600, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
              started_at=T0, updated_at=T0)
    session.add(job)
    session.commit()
    logs = tmp_path / "var" / "logs" / str(job.id) / "1"  # the api_client's data_dir
    logs.mkdir(parents=True)
    (logs / "stdout.log").write_bytes(b"".join(b"step %d\n" % i for i in range(40_000)))
    (logs / "stderr.log").write_bytes("loss ↓ 0.5\n".encode())
    return job


def test_a_chunk_never_ends_inside_a_character(session: Session, job: Job,
                                               tmp_path: Path) -> None:
    owner = session.get(User, job.user_id)
    assert owner is not None
    raw = "loss ↓ 0.5\n".encode()
    cut = raw.index("↓".encode()) + 1  # a limit that ends inside the arrow's 3 bytes
    first = read_log(session, owner, job.id, data_dir=tmp_path / "var", stream="stderr",
                     limit=cut)
    assert first.data == "loss " and first.next_offset == raw.index("↓".encode())
    rest = read_log(session, owner, job.id, data_dir=tmp_path / "var", stream="stderr",
                    offset=first.next_offset)
    assert first.data + rest.data == "loss ↓ 0.5\n" and "\ufffd" not in rest.data


def test_follower_chunks_and_download(api_client: Any, job: Job) -> None:
    client = _login(api_client, "pia")
    page = client.get(f"/jobs/{job.id}").text
    assert f'data-log-url="/jobs/{job.id}/log/stdout"' in page
    offset = int(re.search(r'id="log-stdout"[^>]*data-offset="(\d+)"', page).group(1))  # type: ignore[union-attr]
    size = sum(len(b"step %d\n" % i) for i in range(40_000))
    assert offset == size  # the page holds the tail; the follower continues at the end
    chunk = client.get(f"/jobs/{job.id}/log/stdout", params={"offset": 0}).json()
    assert chunk["data"].startswith("step 0\n") and chunk["next_offset"] == 256 * 1024
    assert not chunk["complete"]
    assert client.get(f"/jobs/{job.id}/log/stdout",
                      params={"offset": size}).json()["data"] == ""
    download = client.get(f"/jobs/{job.id}/log/stdout/download")
    assert download.status_code == 200 and len(download.content) == size
    assert download.headers["content-disposition"] == (
        f'attachment; filename="job-{job.id}-attempt-1-stdout.log"')
    assert client.get(f"/jobs/{job.id}/log/stdout", params={"attempt": 2}).status_code == 422
    assert client.get(f"/jobs/{job.id}/log/stdin").status_code == 422


def test_another_user_gets_404_for_chunks_and_downloads(api_client: Any, job: Job) -> None:
    client = _login(api_client, "eve")
    assert client.get(f"/jobs/{job.id}/log/stdout").status_code == 404
    r = client.get(f"/jobs/{job.id}/log/stdout/download")
    assert r.status_code == 404 and "step 0" not in r.text
