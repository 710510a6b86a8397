"""The CLI follows a server started on another port: the server writes its address into
its data directory, and the CLI on the same machine reads it when no URL is set."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from jobs_server import BIN, Server
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_token, make_user
from rechenwerk.cli.client import DEFAULT_URL, default_url
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("RECHENWERK_API_URL", "RECHENWERK_PORT", "RECHENWERK_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


def test_default_url_order(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_url() == DEFAULT_URL
    monkeypatch.setenv("RECHENWERK_PORT", "8123")
    assert default_url() == "http://127.0.0.1:8123"
    monkeypatch.setenv("RECHENWERK_HOST", "0.0.0.0")
    assert default_url() == "http://127.0.0.1:8123"
    monkeypatch.setenv("RECHENWERK_HOST", "::1")
    assert default_url() == "http://[::1]:8123"
    clean_env.mkdir()
    (clean_env / "server.json").write_text("not json")
    assert default_url() == "http://[::1]:8123"  # a broken file is ignored
    (clean_env / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9001",
                                                      "pid": os.getpid()}))
    assert default_url() == "http://127.0.0.1:9001"  # the running server's own word
    address = clean_env / "server.json"
    address.chmod(0o666)  # writable by others: anyone could have put a URL there
    assert default_url() == "http://[::1]:8123"
    address.chmod(0o644)
    if os.geteuid() == 0:  # another account's file is not followed either
        os.chown(address, 12345, 12345)
        assert default_url() == "http://[::1]:8123"
        os.chown(address, 0, 0)
    assert default_url() == "http://127.0.0.1:9001"
    gone = subprocess.Popen(["true"])
    gone.wait()
    (clean_env / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9001",
                                                      "pid": gone.pid}))
    assert default_url() == "http://[::1]:8123"  # a server that is gone is not followed


@pytest.mark.slow
def test_cli_finds_a_server_on_another_port(session_factory: sessionmaker[Session],
                                            db_url: str, tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=10, starts_at=now - timedelta(days=1))
        token, slug = make_token(s, pi, now=now), project.slug
    data = tmp_path / "var"
    server = Server(data, db_url)
    server.start()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RECHENWERK_API_URL", "RECHENWERK_PORT", "RECHENWERK_HOST")}
    env.update(RECHENWERK_DATA_DIR=str(data), RECHENWERK_TOKEN=token,
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    try:
        assert json.loads((data / "server.json").read_text())["url"] == server.url
        r = subprocess.run([str(BIN), "balance", slug, "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["available_gpu_hours"] == pytest.approx(10.0)
    finally:
        server.stop()
    # A stopped server's address is not followed (uvicorn ends the process with the
    # signal it got, so the file may stay; its pid is gone).
    r = subprocess.run([str(BIN), "balance", slug], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "127.0.0.1:8000" in r.stderr  # the default, clearly named
