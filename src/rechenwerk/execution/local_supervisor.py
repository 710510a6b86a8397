"""The tiny supervisor that runs ONE job attempt for the local executor.

``python -m rechenwerk.execution.local_supervisor RUN_DIR`` is started detached (its own
session) by :class:`rechenwerk.execution.local.LocalExecutor`, so it outlives the server.
It reads ``RUN_DIR/launch.json``, starts the job's command in a new process group with
stdout/stderr redirected to the log files, enforces the walltime itself (SIGTERM, grace
period, SIGKILL) and obeys stop requests (``RUN_DIR/stop`` holding ``cancel`` or
``preempt``, followed by SIGTERM to the supervisor). When the job ends it writes
``RUN_DIR/status.json`` atomically with the exit code and the real start/end times.

Files in RUN_DIR (all written atomically, tmp file + rename):
  supervisor.pid   pid of this process (written first)
  started.json     {"pid": child pid, "started_at": ISO time}  once the command runs
  status.json      final record: state, exit_code, started_at, ended_at, reason
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POLL_S = 0.05


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Stop:
    requested: str | None = None


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM the job's process group, wait ``grace_s``, then SIGKILL. Returns exit code."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            # The leader exited; make sure no child of it keeps running.
            _signal_group(proc.pid, signal.SIGKILL)
            return rc
        time.sleep(POLL_S)
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()


def run(run_dir: Path) -> int:
    launch: dict[str, Any] = json.loads((run_dir / "launch.json").read_text())
    write_atomic(run_dir / "supervisor.pid", str(os.getpid()))
    stop = _Stop()

    def _on_term(signum: int, _frame: object) -> None:
        try:
            stop.requested = (run_dir / "stop").read_text().strip() or "cancel"
        except OSError:
            stop.requested = "cancel"

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    argv: list[str] = list(launch["argv"])
    grace_s = float(launch["kill_grace_s"])
    walltime_s = float(launch["walltime_s"])
    started_at = _now_iso()

    def finish(state: str, exit_code: int | None, reason: str | None) -> int:
        record = {
            "state": state,
            "exit_code": exit_code,
            "started_at": started_at,
            "ended_at": _now_iso(),
            "reason": reason,
        }
        write_atomic(run_dir / "status.json", json.dumps(record))
        return 0

    # A stop may have been requested before we got here (cancel right after submit).
    if (run_dir / "stop").exists():
        kind = (run_dir / "stop").read_text().strip() or "cancel"
        return finish("preempted" if kind == "preempt" else "cancelled", None,
                      f"{kind} requested before the command started")

    log_dir = Path(launch["log_dir"])
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = launch["workdir"]
    try:
        with open(log_dir / "stdout.log", "ab") as out, open(log_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=dict(launch["env"]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own process group: signals reach every child
                close_fds=True,
            )
    except FileNotFoundError as exc:
        missing = exc.filename if exc.filename is not None else argv[0]
        if str(missing) == str(workdir):
            return finish("failed", 127, f"working directory not found: {workdir}")
        return finish("failed", 127, f"command not found: {argv[0]}")
    except PermissionError:
        return finish("failed", 126, f"command is not executable: {argv[0]}")
    except NotADirectoryError:
        return finish("failed", 126, f"working directory is not a directory: {workdir}")
    except OSError as exc:
        return finish("failed", 126, f"could not start {argv[0]}: {exc.strerror or exc}")

    started_at = _now_iso()
    write_atomic(run_dir / "started.json", json.dumps({"pid": proc.pid, "started_at": started_at}))
    deadline = time.monotonic() + walltime_s
    while True:
        rc = proc.poll()
        if rc is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # stray children of a finished job
            if rc == 0:
                return finish("completed", 0, None)
            if rc < 0:
                return finish("failed", rc, f"killed by signal {signal.Signals(-rc).name}")
            return finish("failed", rc, f"exit code {rc}")
        if stop.requested is not None:
            kind = stop.requested
            rc = _terminate(proc, grace_s)
            if kind == "preempt":
                return finish("preempted", rc, "preempted: stopped with SIGTERM to be requeued")
            return finish("cancelled", rc, "cancelled")
        if time.monotonic() >= deadline:
            rc = _terminate(proc, grace_s)
            return finish("timeout", rc, f"walltime of {int(walltime_s)} s exceeded")
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m rechenwerk.execution.local_supervisor RUN_DIR\n")
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
