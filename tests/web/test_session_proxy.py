"""Interactive sessions end to end on the local executor, without a browser: a real
JupyterLab started as a sandboxed job, reached only through the portal's proxy (HTTP and
a kernel's WebSocket), hidden from everybody but its owner, stopped and charged."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from jupyter_messages import evaluate
from portal_login import csrf
from rechenwerk.access.demo import demo_password
from waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]
pytest.importorskip("jupyterlab", reason="JupyterLab is the extra rechenwerk[sessions]")


def _portal_client(portal: Any, username: str) -> httpx.Client:
    client = httpx.Client(base_url=portal.url, timeout=60)
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": demo_password(username),
                                    "csrf_token": csrf(page.text)})
    assert r.status_code in (200, 303), r.text
    return client


def _start(portal: Any, **extra: Any) -> dict[str, Any]:
    r = portal.api("POST", "/api/v1/sessions", "greta",
                   json={"project": "nordlicht-llm", "gpus": 2, "walltime": "30m", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _ready(portal: Any, session_id: int) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        r = portal.api("GET", f"/api/v1/sessions/{session_id}", "greta")
        assert r.status_code == 200, r.text
        found.update(r.json())
        assert found["state"] in ("pending", "starting", "running"), found
        return bool(found["ready"])

    wait_for(ready, "JupyterLab to start in the session job", step=0.3)
    return found


def test_session_through_the_proxy_is_the_owners_alone(portal: Any) -> None:
    session = _start(portal)
    sid = session["id"]
    assert session["url"] == f"/jupyter/{sid}/lab" and session["state"] == "pending"
    owner = _portal_client(portal, "greta")
    member = _portal_client(portal, "jonas")  # same project, not the owner
    operator = _portal_client(portal, "operator")
    try:
        info = _ready(portal, sid)
        assert info["state"] == "running"
        status = owner.get(f"/jupyter/{sid}/api/status")
        assert status.status_code == 200, status.text
        assert "started" in status.json()
        lab = owner.get(f"/jupyter/{sid}/lab")
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        # nobody else learns the session exists: the same answer as for no session at all
        for other in (member, operator):
            assert other.get(f"/jupyter/{sid}/api/status").status_code == 404
            assert other.get(f"/jupyter/{sid}/lab").status_code == 404
        assert owner.get("/jupyter/999999/api/status").status_code == 404
        assert portal.api("GET", f"/api/v1/sessions/{sid}", "jonas").status_code == 404
        assert portal.api("DELETE", f"/api/v1/sessions/{sid}", "jonas").status_code == 404
        # paths stay inside the session
        for path in (f"/jupyter/{sid}/%2e%2e/{sid + 1}/api/status",
                     f"/jupyter/{sid}/api/%2E%2E/%2e%2e/lab", f"/jupyter/{sid}/a%5c..%5cb"):
            assert owner.get(path).status_code == 404, path
        # the portal's login never reaches JupyterLab: it sees its own token only
        anonymous = httpx.get(f"{portal.url}/jupyter/{sid}/api/status", timeout=30)
        assert anonymous.status_code == 404

        # an unsafe request another origin makes the owner's browser send is refused
        forged = owner.post(f"/jupyter/{sid}/api/kernels", json={"name": "python3"},
                            headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403 and forged.json()["code"] == "cross_origin"
        forged = owner.post(f"/jupyter/{sid}/api/terminals",
                            headers={"Referer": "http://evil.example/page"})
        assert forged.status_code == 403
        # a kernel, and its WebSocket through the proxy: the cell sees the job's GPUs
        kernel = owner.post(f"/jupyter/{sid}/api/kernels", json={"name": "python3"},
                            headers={"Origin": portal.url})
        assert kernel.status_code == 201, kernel.text
        ws_url = portal.url.replace("http://", "ws://")
        channel = f"{ws_url}/jupyter/{sid}/api/kernels/{kernel.json()['id']}/channels"
        cookie = "; ".join(f"{k}={v}" for k, v in owner.cookies.items())
        with connect(channel, additional_headers={"Cookie": cookie, "Origin": portal.url},
                     open_timeout=60, max_size=None) as ws:
            visible = evaluate(ws.send, lambda: str(ws.recv(timeout=120)),
                               "os.environ['CUDA_VISIBLE_DEVICES']")
        assert len(visible.split(",")) == 2 and all(g.isdigit() for g in visible.split(",")), (
            visible)
        # a WebSocket from another site, or without a login, is refused at the handshake
        for headers in ({"Cookie": cookie, "Origin": "http://evil.example"},
                        {"Origin": portal.url}):
            with pytest.raises(Exception):  # noqa: B017 - any refusal of the handshake
                connect(channel, additional_headers=headers, open_timeout=30)
    finally:
        stopped = portal.api("DELETE", f"/api/v1/sessions/{sid}", "greta")
        assert stopped.status_code == 200, stopped.text

    def ended() -> bool:
        return bool(portal.api("GET", f"/api/v1/sessions/{sid}", "greta").json()["state"]
                    == "cancelled")

    wait_for(ended, "the stopped session to end")
    gone = owner.get(f"/jupyter/{sid}/api/status")
    assert gone.status_code == 410 and gone.json()["code"] == "session_ended"
    # charged like any job: its run is a settled usage record of the project
    job = portal.api("GET", f"/api/v1/jobs/{sid}", "greta").json()
    assert job["kind"] == "jupyterlab"
    assert job["charged_gpu_hours"] > 0, job
    for client in (owner, member, operator):
        client.close()


def test_session_commands_start_wait_list_and_stop(portal: Any, tmp_path: Any) -> None:
    from live_server import run_cli

    token = portal.tokens["greta"]
    started = run_cli(portal.url, tmp_path, token, "session", "start", "--project",
                      "nordlicht-llm", "--gpus", "1", "--walltime", "20m", "--wait", "--json")
    sid = started["id"]
    try:
        assert started["ready"] and started["state"] == "running"
        assert started["open"] == f"{portal.url}/jupyter/{sid}/lab"
        listed = run_cli(portal.url, tmp_path, token, "session", "list", "--active", "--json")
        assert sid in [s["id"] for s in listed]
        shown = run_cli(portal.url, tmp_path, token, "session", "show", str(sid))
        assert f"open {portal.url}/jupyter/{sid}/lab" in shown.output
        # not the owner: "no such session", exit code 3, one line, no traceback
        other = run_cli(portal.url, tmp_path, portal.tokens["jonas"], "session", "stop",
                        str(sid), code=3)
        assert f"no session {sid}" in other.output
        # a project the user is not in (it does not even learn it exists): refused
        foreign = run_cli(portal.url, tmp_path, token, "session", "start", "--project",
                          "nordstadt-climate", code=3)
        assert "project 'nordstadt-climate' not found" in foreign.output
        bad = run_cli(portal.url, tmp_path, token, "session", "start", "--project",
                      "nordlicht-llm", "--walltime", "forever", code=2)
        assert "walltime" in bad.output
    finally:
        stopped = run_cli(portal.url, tmp_path, token, "session", "stop", str(sid))
    assert f"session {sid} is stopping" in stopped.output


def test_a_session_that_cannot_start_ends_saying_why(portal: Any) -> None:
    missing = f"/nonexistent-{uuid.uuid4().hex}/notebooks"
    session = _start(portal, gpus=1, workdir=missing)
    sid = session["id"]

    def ended() -> bool:
        s = portal.api("GET", f"/api/v1/sessions/{sid}", "greta").json()
        assert not s["ready"], s
        return bool(s["state"] == "failed")

    wait_for(ended, "the session that cannot start to fail")
    owner = _portal_client(portal, "greta")
    page = owner.get(f"/sessions/{sid}")
    assert page.status_code == 200
    assert 'data-testid="session-ended"' in page.text
    # the session's page says what failed and where (the run never got to JupyterLab)
    assert f"working directory not found: {missing}" in page.text
    assert "Open JupyterLab" not in page.text
    # nothing past the failure: the run is charged for the seconds it lived, not its walltime
    job = portal.api("GET", f"/api/v1/jobs/{sid}", "greta").json()
    assert job["charged_gpu_hours"] < 0.05, job
    owner.close()
