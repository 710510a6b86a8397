"""Where the proxy connects for a session, found in a folder the job controls: only
what JupyterLab wrote there is followed, never a link, a hard link, a planted file or a
node that is not the job's own (sessions/service.py), and paths stay in the session."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rechenwerk.config import Settings
from rechenwerk.jobs.models import Job
from rechenwerk.sessions.service import endpoint_of, session_ready
from rechenwerk.web.jupyter_proxy import _inside

TOKEN = "t" * 43


def _job(**kw: object) -> Job:
    values: dict[str, object] = dict(id=7, kind="jupyterlab", state="running", attempt=1,
                                     placement=[["node01", [0]]], backend_handle="7.1")
    values.update(kw)
    return Job(**values)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "logs" / "7" / "1"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)  # bind sockets by a short relative name, as JupyterLab does
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, session_node_host="{node}.ib.example")


@pytest.fixture
def listening(run_dir: Path) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("jupyter.sock")
    s.listen(4)
    yield s
    s.close()


def _info(run_dir: Path, **info: object) -> None:
    (run_dir / "session.json").write_text(json.dumps({"token": TOKEN, **info}))


def test_a_socket_jupyterlab_bound_is_found_and_answers(
        run_dir: Path, settings: Settings, listening: socket.socket) -> None:
    assert endpoint_of(_job(), settings) is None  # no session.json yet: not ready
    _info(run_dir, socket="jupyter.sock")
    endpoint = endpoint_of(_job(), settings)
    assert endpoint is not None and endpoint.token == TOKEN
    assert endpoint.uds == f"/proc/self/fd/{endpoint.fd}"
    assert endpoint.answers()
    endpoint.close()
    assert session_ready(_job(), settings)
    # only a running session of kind jupyterlab
    for other in (_job(kind="batch"), _job(state="pending"), _job(state="cancelled")):
        assert endpoint_of(other, settings) is None


def test_links_and_planted_files_are_never_followed(
        run_dir: Path, settings: Settings, tmp_path: Path, listening: socket.socket) -> None:
    _info(run_dir, socket="jupyter.sock")
    elsewhere = tmp_path / "other.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.chdir(tmp_path)
    other.bind("other.sock")
    os.chdir(run_dir)
    try:
        os.unlink(run_dir / "jupyter.sock")
        os.symlink(elsewhere, run_dir / "jupyter.sock")  # a link to another socket
        assert endpoint_of(_job(), settings) is None
        os.unlink(run_dir / "jupyter.sock")
        os.link(elsewhere, run_dir / "jupyter.sock")  # a hard link to it
        assert endpoint_of(_job(), settings) is None
        os.unlink(run_dir / "jupyter.sock")
        (run_dir / "jupyter.sock").write_text("")  # not a socket at all
        assert endpoint_of(_job(), settings) is None
    finally:
        other.close()


@pytest.mark.parametrize("content", [
    b"not json", b"[]", json.dumps({"token": "short"}).encode(),
    json.dumps({"token": TOKEN, "pad": "x" * 5000}).encode(),  # over 4 KiB
])
def test_a_bad_session_file_means_not_ready(run_dir: Path, settings: Settings,
                                            listening: socket.socket, content: bytes) -> None:
    (run_dir / "session.json").write_bytes(content)
    assert endpoint_of(_job(), settings) is None


def test_a_linked_session_file_is_not_read(run_dir: Path, settings: Settings, tmp_path: Path,
                                           listening: socket.socket) -> None:
    target = tmp_path / "planted.json"
    target.write_text(json.dumps({"token": TOKEN, "socket": "jupyter.sock"}))
    os.symlink(target, run_dir / "session.json")
    assert endpoint_of(_job(), settings) is None


def test_a_slurm_session_is_reached_on_its_own_node_only(
        run_dir: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from rechenwerk.sessions import service

    monkeypatch.setattr(service, "_RUN_NODES", {})  # what other tests' runs left there
    _info(run_dir, node="node01", port=41000)
    endpoint = endpoint_of(_job(), settings)
    assert endpoint is not None
    assert (endpoint.host, endpoint.port, endpoint.origin) == (
        "node01.ib.example", 41000, "http://node01.ib.example:41000")
    for bad in ({"node": "node02", "port": 41000}, {"node": "node01", "port": 22},
                {"node": "node01", "port": True}, {"node": "node01", "port": "41000"},
                {"host": "10.0.0.1", "port": 41000}):
        _info(run_dir, **bad)
        assert endpoint_of(_job(), settings) is None, bad
    # Slurm's own nodes when there is no placement of ours: asked of the backend, once
    _info(run_dir, node="gpu17", port=41000)
    calls = []

    class Backend:
        def poll(self, handles: list[str]) -> dict[str, object]:
            calls.append(handles)
            from rechenwerk.execution.base import BackendJobState, BackendJobStatus

            return {h: BackendJobStatus(h, BackendJobState.RUNNING, nodes=("gpu17",))
                    for h in handles}

    job = _job(id=8, placement=None, backend_handle="4242")
    (run_dir.parent.parent / "8" / "1").mkdir(parents=True)
    (run_dir.parent.parent / "8" / "1" / "session.json").write_text(
        json.dumps({"token": TOKEN, "node": "gpu17", "port": 41000}))
    for _ in range(2):
        found = endpoint_of(job, settings, lambda: Backend())  # type: ignore[arg-type, return-value]
        assert found is not None and found.host == "gpu17.ib.example"
    assert calls == [["4242"]]


@pytest.mark.parametrize(("path", "inside"), [
    ("/jupyter/7/lab", True), ("/jupyter/7/api/contents/a%20b.ipynb", True),
    ("/jupyter/7/", True), ("/jupyter/8/lab", False), ("/jupyter/70/lab", False),
    ("/jupyter/7/../8/lab", False), ("/jupyter/7/%2e%2e/8/lab", False),
    ("/jupyter/7/a/%2E/b", False), ("/jupyter/7/a%5c..%5cb", False),
    ("/jupyter/7/a%00b", False),
])
def test_paths_stay_in_the_session(path: str, inside: bool) -> None:
    assert _inside(path, "/jupyter/7/") is inside


@pytest.mark.parametrize("bad", ["{host}.ib", "{node", "node}", "a b", ""])
def test_the_node_host_template_takes_only_the_node(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(session_node_host=bad)
    assert Settings(session_node_host="{node}-ib0.cluster").session_node_host


@pytest.mark.parametrize("bad", ["python3", "relative/python", "/usr/bin/py\x00thon"])
def test_the_session_python_is_an_absolute_path(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(session_python=bad)


def test_a_session_never_sets_the_portals_cookies() -> None:
    import httpx

    from rechenwerk.web.jupyter_proxy import _response_headers

    upstream = httpx.Response(302, headers=[
        ("set-cookie", "rw_session=planted; Path=/"), ("set-cookie", "_xsrf=abc; Path=/j"),
        ("location", "http://localhost/jupyter/7/lab"), ("transfer-encoding", "chunked"),
        ("content-type", "text/html")])
    headers = _response_headers(upstream, "http://localhost")
    assert ("set-cookie", "_xsrf=abc; Path=/j") in headers
    assert not any(v.startswith("rw_session") for k, v in headers if k == "set-cookie")
    assert ("location", "/jupyter/7/lab") in headers  # the upstream's own origin dropped
    assert all(k != "transfer-encoding" for k, _ in headers)
