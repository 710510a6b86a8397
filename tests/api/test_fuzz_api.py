"""No 5xx for any input (docs/security.md, "No 5xx"): schemathesis against the real server.

For each database (SQLite; PostgreSQL, ``postgres`` marker) and each of two demo users (the
PI ``greta`` and the ``operator``), a fresh ``rechenwerk server`` process runs on a free
port over a database migrated with ``rechenwerk admin db upgrade`` and loaded with
``rechenwerk admin demo`` (once per kind of database; each server gets its own copy).
The schemathesis CLI reads the OpenAPI schema from the running server (``/openapi.json``)
and sends requests with that user's API token:

- ``test_no_operation_answers_5xx``: every operation: the coverage phase (boundary and
  invalid values of every parameter and body field: integers past 64 bits, NUL and
  other control characters, odd Unicode, wrong types, missing fields) and up to
  ``FUZZ_EXAMPLES`` generated requests per operation, valid and invalid;
- ``test_no_sequence_of_calls_answers_5xx``: ``STATEFUL_SCENARIOS`` stateful sequences
  of at most ``STATEFUL_STEPS`` calls along the links schemathesis infers from the schema
  (a created proposal's id into its submit, reviews and decision; a job's id into show,
  logs and cancel; ...);
- ``test_the_server_logged_no_traceback``: afterwards, the server's log holds no
  traceback.

The only check is schemathesis' ``not_a_server_error``: any 5xx fails, with the request
that caused it (a ``curl`` line) and its test case id. Response-schema conformance is not
checked (docs/security.md says why).

Bounds: a fixed seed (``FUZZ_SEED``) and a fixed number of examples, so CI sends the same
requests every run; each request has a ``REQUEST_TIMEOUT_S`` guard and each schemathesis
run ``RUN_TIMEOUT_S``. A longer exploratory run by hand: ``RECHENWERK_FUZZ_EXAMPLES=200
RECHENWERK_FUZZ_SCENARIOS=2000 RECHENWERK_FUZZ_SEED=$RANDOM RECHENWERK_FUZZ_TIMEOUT_S=3600
pytest tests/api/test_fuzz_api.py``, or the schemathesis CLI against a server of your own
(docs/security.md).

The scheduler loop is off in these servers: a fuzzed job spec is accepted and queued but
never started, so no generated command ever runs on the machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from waiting import wait_for

pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: "
                    "pip install -e '.[dev]'")

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"

# Bounds of one fuzz target (one database, one user); see the module docstring.
FUZZ_EXAMPLES = int(os.environ.get("RECHENWERK_FUZZ_EXAMPLES", "6"))
STATEFUL_SCENARIOS = int(os.environ.get("RECHENWERK_FUZZ_SCENARIOS", "80"))
STATEFUL_STEPS = 6
FUZZ_SEED = int(os.environ.get("RECHENWERK_FUZZ_SEED", "20261122"))
REQUEST_TIMEOUT_S = 30
# A failure guard: a run takes about a minute here (raise it for long runs by hand).
RUN_TIMEOUT_S = float(os.environ.get("RECHENWERK_FUZZ_TIMEOUT_S", "600"))
START_TIMEOUT_S = 120.0

USERS = {"pi": "greta", "operator": "operator"}  # role -> demo user (access/demo.py)

# Operations left out, because they would end the fuzz session rather than test it:
# revoking a token (the fuzzer reads the id of the token it uses from GET /tokens and
# revokes it; every later request would be a 401).
EXCLUDED = ["DELETE /api/v1/tokens/{token_id}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FuzzTarget:
    url: str
    token: str
    tmp: Path
    log: Path
    proc: subprocess.Popen[bytes]


def _env(extra: dict[str, str]) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC),
            "COLUMNS": "300", **extra}


def _cli(env: dict[str, str], *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "rechenwerk.cli.main", *args], env=env,
                         capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
    assert res.returncode == 0, f"rechenwerk {' '.join(args)}: {res.stdout}{res.stderr}"


def _server_env(tmp: Path, db_url: str) -> dict[str, str]:
    return _env({
        "RECHENWERK_DATA_DIR": str(tmp / "var"),
        "RECHENWERK_DATABASE_URL": db_url,
        # The development key is refused outside SQLite with the local executor.
        "RECHENWERK_SECRET_KEY": secrets.token_hex(32),
        # No scheduler: fuzzed jobs are queued, never run (module docstring).
        "RECHENWERK_SCHEDULER_ENABLED": "false",
        "RECHENWERK_LOCAL_CLUSTER": "2x4:A100-80GB",
    })


@dataclass
class DemoDatabase:
    """A database migrated and loaded with the demo once per kind; each server gets a
    copy (``copy``), so the two users' runs cannot see each other's changes."""

    db: str
    url: str
    tokens: dict[str, str]
    pg: Any  # conftest.PgDatabases for PostgreSQL

    def copy(self, tmp: Path) -> str:
        if self.db == "postgresql":
            return str(self.pg.create("rw_fuzz", template=self.url))
        target = tmp / "rechenwerk.db"
        with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as src, \
                closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        return f"sqlite:///{target}"


def _demo_database(db: str, tmp: Path, pg: Any) -> DemoDatabase:
    url = f"sqlite:///{tmp / 'template.db'}" if db == "sqlite" else pg.create("rw_fuzz_demo")
    env = _server_env(tmp, url)
    _cli(env, "admin", "db", "upgrade")
    tokens_file = tmp / "demo-tokens.json"
    _cli(env, "admin", "demo", "--tokens-file", str(tokens_file))
    return DemoDatabase(db, url, json.loads(tokens_file.read_text()), pg)


def _start(tmp: Path, db_url: str, token: str) -> FuzzTarget:
    port = _free_port()
    env = _server_env(tmp, db_url)
    log = tmp / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rechenwerk.cli.main", "server", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            env=env, stdout=out, stderr=out, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/api/v1/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, "the fuzzed server to come up", START_TIMEOUT_S, step=0.1)
    except BaseException:
        _stop(proc)
        raise
    return FuzzTarget(url, token, tmp, log, proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _param(db: str, role: str) -> Any:
    # One xdist group per database: its two targets share the demo database they copy.
    marks = [pytest.mark.xdist_group(f"fuzz-{db}")]
    if db == "postgresql":
        marks.append(pytest.mark.postgres)
    return pytest.param((db, role), id=f"{db}-{role}", marks=marks)


@pytest.fixture(scope="module")
def demo_databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoDatabase]:
    return {}  # filled by fuzz_target, one per kind of database


@pytest.fixture(scope="module", params=[_param(db, role) for db in ("sqlite", "postgresql")
                                        for role in USERS])
def fuzz_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                demo_databases: dict[str, DemoDatabase]) -> Iterator[FuzzTarget]:
    db, role = request.param
    pg = request.getfixturevalue("pg_databases") if db == "postgresql" else None
    if db not in demo_databases:
        demo_databases[db] = _demo_database(db, tmp_path_factory.mktemp(f"demo-{db}"), pg)
    demo = demo_databases[db]
    tmp = tmp_path_factory.mktemp(f"fuzz-{db}-{role}")
    target = _start(tmp, demo.copy(tmp), demo.tokens[USERS[role]])
    try:
        yield target
    finally:
        _stop(target.proc)


def _schemathesis(target: FuzzTarget, name: str, *args: str) -> None:
    """One ``schemathesis run`` against the target; fails with its failure report."""
    # No cache or example database: every run starts from the seed alone.
    config = target.tmp / "schemathesis.toml"
    config.write_text(f"[cache]\nenabled = false\n\n[phases.stateful]\n"
                      f"max-steps = {STATEFUL_STEPS}\n")
    excluded = [a for op in EXCLUDED for a in ("--exclude-name", op)]
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
           target.url + "/openapi.json",
           "--header", f"Authorization: Bearer {target.token}",
           "--checks", "not_a_server_error", "--seed", str(FUZZ_SEED),
           "--generation-database", "none", "--workers", "1",
           "--request-timeout", str(REQUEST_TIMEOUT_S), "--no-color", *excluded, *args]
    res = subprocess.run(cmd, cwd=target.tmp, env=_env({}), capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S, check=False)
    out = res.stdout + res.stderr
    (target.tmp / f"{name}.txt").write_text(out)
    if res.returncode != 0:
        failures = re.search(r"^=+ (FAILURES|ERRORS) =+$.*?(?=^=+ WARNINGS|^=+ SUMMARY|\Z)",
                             out, re.M | re.S)
        pytest.fail(f"schemathesis ({name}, exit {res.returncode}) against "
                    f"{target.url}:\n{failures.group(0) if failures else out[-6000:]}",
                    pytrace=False)
    tested = re.search(r"^\s*(\d+) generated", out, re.M)
    assert tested and int(tested.group(1)) > 0, f"schemathesis sent nothing:\n{out[-3000:]}"


def test_no_operation_answers_5xx(fuzz_target: FuzzTarget) -> None:
    _schemathesis(fuzz_target, "operations", "--phases", "examples,coverage,fuzzing",
                  "--max-examples", str(FUZZ_EXAMPLES))


def test_no_sequence_of_calls_answers_5xx(fuzz_target: FuzzTarget) -> None:
    _schemathesis(fuzz_target, "stateful", "--phases", "stateful",
                  "--max-examples", str(STATEFUL_SCENARIOS))


def test_the_server_logged_no_traceback(fuzz_target: FuzzTarget) -> None:
    lines = fuzz_target.log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if starts:
        pytest.fail(f"{len(starts)} traceback(s) in {fuzz_target.log}; the first, without "
                    "library frames:\n" + "\n".join(_own_frames(lines[starts[0]:])),
                    pytrace=False)


def _own_frames(lines: list[str]) -> list[str]:
    """A traceback's first line, its frames in rechenwerk's own code and its exception."""
    out, keep = lines[:1], False
    for line in lines[1:]:
        if line.startswith("  File "):
            keep = "site-packages" not in line
        elif not line.startswith(" "):
            return [*out, line]  # the exception ends the traceback
        if keep:
            out.append(line)
    return out
