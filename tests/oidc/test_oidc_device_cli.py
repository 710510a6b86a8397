"""`rechenwerk login --sso` as a person runs it on a login node: the real CLI in a
subprocess, the device code confirmed at the real test provider (httpx, as in a
browser), the stored token used by the next CLI command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from oidc_helpers import Centre, device_abort, device_confirm, user_code_of
from sqlalchemy import select

from rechenwerk.access.models import User
from waiting import wait_for

pytestmark = [pytest.mark.oidc, pytest.mark.xdist_group("oidc")]

SRC = Path(__file__).resolve().parents[2] / "src"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECHENWERK_")}
    return {**env, "PYTHONPATH": str(SRC), "XDG_CONFIG_HOME": str(home), "COLUMNS": "200"}


def _rw(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rechenwerk.cli.main", *args],
                          env=_env(home), capture_output=True, text=True, timeout=120,
                          check=False)


def _start_login_sso(centre: Centre, home: Path) -> tuple[subprocess.Popen[str], str, str]:
    """`rechenwerk login --sso` running, with the user code and URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rechenwerk.cli.main", "login", "--sso", "--provider",
         "testaai", "--url", centre.url],
        env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout, proc.stderr
    lines: list[str] = []

    def code_shown() -> str | None:
        lines.append(out.readline())
        assert lines[-1] or proc.poll() is None, "".join(lines) + err.read()
        return user_code_of(lines[-1])

    try:
        code = wait_for(code_shown, "the CLI to print the user code")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    uri = next(line.split("open ", 1)[1].split(" ", 1)[0]
               for line in lines if "open http" in line)
    assert uri == centre.provider.issuer + "/device"
    return proc, code, uri


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_login_sso_with_the_device_flow(centre: Centre, tmp_path: Path) -> None:
    proc, code, uri = _start_login_sso(centre, tmp_path)
    try:
        device_confirm(uri, code, "bert", "bert-provider-pw")
    finally:
        out, err = _finish(proc)
    assert proc.returncode == 0, out + err
    assert "logged in to" in out and "as bert" in out, out
    stored = json.loads((tmp_path / "rechenwerk" / "credentials.json").read_text())
    assert stored["url"] == centre.url and stored["token"].startswith("rw_")
    # the stored token works: bert's entitlement made him a viewer of nordlicht-llm
    listed = _rw(tmp_path, "project", "list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert [p["slug"] for p in json.loads(listed.stdout)["items"]] == ["nordlicht-llm"]
    # the centre's AUP comes first: the CLI says so, accepting it opens the centre
    assert "rechenwerk aup accept" in out, out
    accepted = _rw(tmp_path, "aup", "accept", "--yes")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_login_sso_aborted_at_the_provider_is_one_line(centre: Centre,
                                                        tmp_path: Path) -> None:
    proc, code, uri = _start_login_sso(centre, tmp_path)
    try:
        device_abort(uri, code)
    finally:
        out, err = _finish(proc)
    assert proc.returncode != 0
    lines = (out + err).strip().splitlines()
    assert "Traceback" not in out + err
    error = next(line for line in lines if line.startswith("error:"))
    assert "sign-in with Test AAI failed: the provider refused the token request " \
           "(access_denied" in error, out + err
    assert not (tmp_path / "rechenwerk" / "credentials.json").exists()


def test_device_handles_are_single_use_and_bad_ones_one_line(centre: Centre,
                                                            tmp_path: Path) -> None:
    r = httpx.post(centre.url + "/api/v1/auth/oidc/device/poll",
                   json={"handle": "not-a-handle"}, timeout=30)
    assert r.status_code == 401
    assert r.json()["detail"] == "this sign-in has expired or was already used"
    started = httpx.post(centre.url + "/api/v1/auth/oidc/device",
                         json={"provider": "testaai"}, timeout=30).json()
    pending = httpx.post(centre.url + "/api/v1/auth/oidc/device/poll",
                         json={"handle": started["handle"]}, timeout=30)
    assert pending.status_code == 200
    assert pending.json()["status"] in ("authorization_pending", "slow_down")


def test_login_sso_with_a_provider_that_is_down_is_one_line(centre: Centre,
                                                            tmp_path: Path) -> None:
    res = _rw(tmp_path, "login", "--sso", "--provider", "down", "--url", centre.url)
    assert res.returncode != 0
    out = (res.stdout + res.stderr).strip()
    assert "Traceback" not in out
    assert "sign-in with Down AAI is not possible now" in out.splitlines()[0], out


def test_login_sso_needs_a_provider_name_when_there_are_several(centre: Centre,
                                                                tmp_path: Path) -> None:
    res = _rw(tmp_path, "login", "--sso", "--url", centre.url)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "several sign-in providers are configured" in res.stdout + res.stderr


def test_device_sign_in_links_a_local_account_with_its_password(centre: Centre) -> None:
    api = centre.url + "/api/v1/auth/oidc/device"
    wrong = httpx.post(api, json={"provider": "testaai", "link_username": "clara",
                                  "link_password": "not-claras"}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong username or password"
    started = httpx.post(api, json={"provider": "testaai", "link_username": "clara",
                                    "link_password": "clara-demo"}, timeout=30)
    assert started.status_code == 200, started.text
    body = started.json()
    device_confirm(body["verification_uri"], body["user_code"], "dora", "dora-provider-pw")

    def polled() -> dict[str, object] | None:
        r = httpx.post(api + "/poll", json={"handle": body["handle"]}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] == "done" else None

    # the provider's own polling interval, as RFC 8628 asks of clients
    done = wait_for(polled, "the device sign-in to complete", step=body["interval"] + 1)
    token = done["token"]["token"]  # type: ignore[index]
    me = httpx.get(centre.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                   timeout=30).json()
    assert me["username"] == "clara"  # linked, no new user "dora"
    with centre.session() as s:
        assert s.scalars(select(User).where(User.username == "dora")).first() is None
