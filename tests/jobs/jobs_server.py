"""Run a real ``rechenwerk server`` process for restart and end-to-end tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from waiting import DEADLINE_S, wait_for

BIN = Path(sys.executable).parent / "rechenwerk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, db_url: str, *, cluster: str = "1x4:A100-80GB",
                 port: int | None = None, policy: str = "fifo") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Jobs run sandboxed (the default where bubblewrap works), as accounts of their
        # own under root: the test's folder, where release files appear and jobs count
        # their starts, is shared with them (the data directory inside stays hidden).
        shared = Path(data_dir).parent
        shared.chmod(0o777)
        self.env = {
            **os.environ,
            "RECHENWERK_DATA_DIR": str(data_dir),
            "RECHENWERK_DATABASE_URL": db_url,
            "RECHENWERK_LOCAL_CLUSTER": cluster,
            "RECHENWERK_SCHEDULER_INTERVAL_S": "0.2",
            "RECHENWERK_FORECAST_INTERVAL_S": "0.5",
            "RECHENWERK_SCHEDULER_POLICY": policy,
            "RECHENWERK_KILL_GRACE_S": "2",
            "RECHENWERK_PORT": str(self.port),
            # The server refuses its development key with PostgreSQL.
            "RECHENWERK_SECRET_KEY": secrets.token_hex(32),
            "RECHENWERK_LOCAL_SANDBOX_RW": str(shared),
        }
        self.log = data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = DEADLINE_S, *,
              args: tuple[str, ...] = ("--log-level", "warning")) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN), "server", "--port", str(self.port), *args],
                env=self.env, stdout=log, stderr=log, start_new_session=True)

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                return httpx.get(self.url + "/api/v1/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, "the server to come up", timeout, step=0.1)
        except AssertionError:
            raise RuntimeError(f"server did not come up: {self.log.read_text()[-3000:]}"
                               ) from None

    def kill(self) -> None:
        """SIGKILL, like a crash: no shutdown hooks run."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Cli:
    """The real ``rechenwerk`` CLI as one user of ``server`` (token in the environment)."""

    def __init__(self, server: Server, token: str, config_dir: Path) -> None:
        self.env = {**server.env, "RECHENWERK_API_URL": server.url, "RECHENWERK_TOKEN": token,
                    "XDG_CONFIG_HOME": str(config_dir), "COLUMNS": "200"}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(BIN), *args], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


def pi_centre(session_factory: sessionmaker[Session], db_url: str, tmp_path: Path,
              slug: str) -> tuple[Server, Cli]:
    """A server (not started) over a 1x4-GPU cluster and the CLI of the PI of project
    ``slug``, awarded 50 GPU-hours since yesterday."""
    from datetime import timedelta

    from factories import make_award, make_project, make_token, make_user
    from rechenwerk.clock import WallClock
    from rechenwerk.store.session import session_scope

    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi, slug=slug)
        make_award(s, project, gpu_hours=50, starts_at=now - timedelta(days=1))
        token = make_token(s, pi, now=now)
    server = Server(tmp_path / "var", db_url, cluster="1x4:A100-80GB")
    return server, Cli(server, token, tmp_path / "config")
