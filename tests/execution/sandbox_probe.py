"""The probe job: tries every leak a hostile job could use and prints what it got.

Run inside the local executor's sandbox by tests/execution/test_sandbox.py. Prints one
JSON object: for each attempt, what it read or did, or {"refused": <error>}."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def attempt(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except OSError as exc:
        return {"refused": type(exc).__name__}


def environs() -> dict[str, str]:
    """Every process environment this job can read."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            found[pid] = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return found


def signal_server(pid: str) -> str:
    os.kill(int(pid), 0)
    return "delivered"


def write(path: Path) -> str:
    path.write_text("planted by a job")
    return "written"


def main() -> None:
    data_dir, other_workdir, other_log, server_pid = sys.argv[1:5]
    data = Path(data_dir)
    out = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "env": dict(os.environ),
        "tokens": attempt(lambda: (data / "demo-tokens.json").read_text()),
        "database": attempt(lambda: (data / "rechenwerk.db").read_bytes()[:16].hex()),
        "runs": attempt(lambda: sorted(os.listdir(data / "runs"))),
        "logs": attempt(lambda: sorted(os.listdir(data / "logs"))),
        "other_workdir": attempt(lambda: Path(other_workdir, "secret.txt").read_text()),
        "other_log": attempt(lambda: Path(other_log, "stdout.log").read_text()),
        "environs": environs(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "signal_server": attempt(lambda: signal_server(server_pid)),
        "write_data_dir": attempt(lambda: write(data / "planted")),
        "own_workdir": attempt(lambda: write(Path("mine.txt"))),
        "shadow": attempt(lambda: Path("/etc/shadow").read_text()[:10]),
        "hostname": os.uname().nodename,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
