"""One cgroup per local job attempt: limits (processes, memory) and a reliable end.

The job's supervisor moves itself into ``rechenwerk-jobs/<handle>`` below its own
cgroup before it starts the node processes, so everything the job starts, including
daemons that leave their process group, is counted, limited and killed at the end.
Works with cgroup v1 (one hierarchy per controller) and v2 (unified); where the machine
offers neither writable hierarchy, the job runs without one (the reason is logged).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "rechenwerk-jobs"


@dataclass(frozen=True, slots=True)
class _Dir:
    path: Path  # the job's cgroup directory
    home: Path  # the cgroup the supervisor came from (to leave before removing)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                out[name] = path
    return out


class JobCgroup:
    def __init__(self, dirs: list[_Dir]) -> None:
        self._dirs = dirs

    @classmethod
    def create(cls, name: str, *, pids_max: int,
               memory_bytes: int | None) -> tuple[JobCgroup | None, str | None]:
        """The job's cgroup with its limits set, joined by this process; or None and why."""
        own = _own_cgroups()
        dirs: list[_Dir] = []
        problems: list[str] = []
        if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
            home = CGROUP_ROOT / own[""].lstrip("/")
            limits = {"pids.max": str(pids_max)}
            if memory_bytes:
                limits["memory.max"] = str(memory_bytes)
            d = cls._make(home, name, limits, problems, enable="+pids +memory")
            if d is not None:
                dirs.append(d)
        else:
            wanted = {"pids": {"pids.max": str(pids_max)},
                      "memory": ({"memory.limit_in_bytes": str(memory_bytes)}
                                 if memory_bytes else {})}
            for controller, limits in wanted.items():
                mount = CGROUP_ROOT / controller
                if controller not in own or not mount.is_dir():
                    problems.append(f"no {controller} cgroup hierarchy")
                    continue
                d = cls._make(mount / own[controller].lstrip("/"), name, limits, problems)
                if d is not None:
                    dirs.append(d)
        if not dirs:
            return None, "; ".join(problems) or "no cgroup hierarchy"
        group = cls(dirs)
        try:
            group.join(os.getpid())
        except OSError as exc:
            group.remove()
            return None, f"cannot join the job's cgroup: {exc.strerror or exc}"
        return group, ("; ".join(problems) or None)

    @staticmethod
    def _make(home: Path, name: str, limits: dict[str, str], problems: list[str],
              enable: str | None = None) -> _Dir | None:
        path = home / PARENT / name
        try:
            path.mkdir(parents=True, exist_ok=True)
            if enable:  # v2: controllers must be enabled on the way down
                with contextlib.suppress(OSError):
                    (home / "cgroup.subtree_control").write_text(enable)
                with contextlib.suppress(OSError):
                    (home / PARENT / "cgroup.subtree_control").write_text(enable)
            for key, value in limits.items():
                try:
                    (path / key).write_text(value)
                except OSError as exc:
                    problems.append(f"{key} not set: {exc.strerror or exc}")
        except OSError as exc:
            problems.append(f"cannot create {path}: {exc.strerror or exc}")
            return None
        return _Dir(path, home)

    def join(self, pid: int) -> None:
        for d in self._dirs:
            (d.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self._dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d.path / "cgroup.procs").read_text().split())
        return found

    def kill_others(self) -> int:
        """SIGKILL every process of the job but this one (escaped daemons included)."""
        me = os.getpid()
        victims = self.pids() - {me}
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return len(victims)

    def remove(self) -> None:
        """Leave the cgroup and remove it (once its processes are gone)."""
        me = str(os.getpid())
        deadline = time.monotonic() + 5.0  # killed processes leave as they exit
        while self.pids() - {os.getpid()} and time.monotonic() < deadline:
            time.sleep(0.02)
        for d in self._dirs:
            with contextlib.suppress(OSError):
                (d.home / "cgroup.procs").write_text(me)
            with contextlib.suppress(OSError):
                d.path.rmdir()
