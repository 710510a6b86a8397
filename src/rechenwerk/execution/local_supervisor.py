"""The tiny supervisor that runs ONE job attempt for the local executor.

``python -m rechenwerk.execution.local_supervisor RUN_DIR`` is started detached (its own
session) by :class:`rechenwerk.execution.local.LocalExecutor`, so it outlives the server.
It reads ``RUN_DIR/launch.json`` and starts the job's command once per allocated node
(one task per node, like ``srun --ntasks-per-node=1``), each in its own process group
with that node's environment plus ``MASTER_PORT``, a free TCP port it picks for the
attempt's rendezvous (the same for every node process). It enforces the walltime itself
(SIGTERM to every node process, grace period, SIGKILL) and obeys stop requests
(``RUN_DIR/stop`` holding ``cancel`` or ``preempt``, followed by SIGTERM to the
supervisor) the same way. Gang semantics like ``srun --kill-on-bad-exit``: when one node
process exits non-zero or is killed, the others get SIGTERM, then SIGKILL after the
grace period, and the job fails with the first failure's exit code.

Output goes to ``<log_dir>/stdout.log`` and ``stderr.log``: a single-node job writes to
them directly; with several nodes the supervisor reads each node's pipes and writes
whole lines prefixed with the node's name (``node02: ...``, like ``srun --label``).
When the job ends it writes ``RUN_DIR/status.json`` atomically with the exit code and
the real start/end times, after the logs are complete.

Files in RUN_DIR (all written atomically, tmp file + rename):
  supervisor.pid   pid of this process (written first)
  started.json     {"pid": rank 0's pid, "pids": [one per node], "nodes": [...],
                    "master_port": port, "started_at": ISO time}  once the command runs;
                   every pid leads its own process group
  status.json      final record: state, exit_code, started_at, ended_at, reason,
                   gpu_use (the job's GPU use, None: not measured) and gpu_use_note,
                   energy (the run's measured energy, None: not measured) and
                   energy_note

GPU use (``launch["gpu_sampling"]``: interval and idle threshold) is sampled through
NVML on a thread of this process (:class:`rechenwerk.execution.gpu_use.GpuMonitor`) for
the GPUs in the node processes' ``CUDA_VISIBLE_DEVICES``; where NVML is missing the
record says why and the job runs as ever.

Energy (``launch["energy"]``: interval, the job's share of the machine, the powercap
root) is read from NVML's energy counters of the job's GPUs or else the machine's RAPL
counters (:mod:`rechenwerk.execution.energy_meter`) when the command starts, while it
runs and when it ends; where neither is readable the record says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rechenwerk.execution.cgroups import JobCgroup
from rechenwerk.execution.energy_meter import POWERCAP_ROOT, EnergyMeter, open_meter
from rechenwerk.execution.gpu_use import (
    DEFAULT_IDLE_BELOW_PCT,
    GpuMonitor,
    NvmlSampler,
    visible_indices,
)
from rechenwerk.job_files import UnsafeJobPath, open_job_file, split_attempt_dir

POLL_S = 0.05
# A labelled line longer than this is written in pieces (each piece labelled), so a
# job printing without newlines cannot make the supervisor buffer without bound.
MAX_LINE_BYTES = 64 * 1024
# After the node processes are gone, how long to wait for their output pipes to drain
# (a grandchild that escaped the process group may hold a pipe open forever).
PUMP_JOIN_S = 5.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Stop:
    requested: str | None = None


@dataclass
class _Task:
    """One node's process: the command started once on that node."""

    rank: int
    node: str
    proc: subprocess.Popen[bytes]
    rc: int | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def poll(self) -> int | None:
        if self.rc is None:
            self.rc = self.proc.poll()
            if self.rc is not None:
                # The node's command exited; no child of it may keep running.
                _signal_group(self.proc.pid, signal.SIGKILL)
        return self.rc


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(tasks: list[_Task], grace_s: float) -> None:
    """SIGTERM every node's process group, wait ``grace_s`` for all, then SIGKILL."""
    for t in tasks:
        if t.poll() is None:
            _signal_group(t.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if all(t.poll() is not None for t in tasks):
            return
        time.sleep(POLL_S)
    for t in tasks:
        _signal_group(t.proc.pid, signal.SIGKILL)
    for t in tasks:
        t.proc.wait()
        t.poll()


def _exit_code(tasks: list[_Task]) -> int | None:
    """The job's exit code after a stop: the first non-zero one in rank order, else 0."""
    codes = [t.rc for t in tasks]
    return next((c for c in codes if c), 0 if codes else None)


class _LabelledLog:
    """One log file shared by several node processes; whole lines only, each labelled."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._fh.write(data)
            self._fh.flush()  # followers (`rechenwerk logs -f`) see lines as they come

    def pump(self, pipe: IO[bytes], label: str) -> None:
        """Copy ``pipe`` to the log until EOF, prefixing every line with ``label: ``."""
        prefix = f"{label}: ".encode()
        fd = pipe.fileno()
        pending = b""
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                out = [prefix + line + b"\n" for line in lines]
                while len(pending) >= MAX_LINE_BYTES:
                    out.append(prefix + pending[:MAX_LINE_BYTES] + b"\n")
                    pending = pending[MAX_LINE_BYTES:]
                if out:
                    self.write(b"".join(out))
            if pending:  # a last line without newline
                self.write(prefix + pending + b"\n")
        finally:
            pipe.close()


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

    # Named by job, attempt and pid: unique on the machine even across data dirs.
    cgroup = _join_cgroup(f"{run_dir.name}-{os.getpid()}", launch.get("cgroup"))
    argv: list[str] = list(launch["argv"])
    grace_s = float(launch["kill_grace_s"])
    walltime_s = float(launch["walltime_s"])
    # One entry per allocated node, in rank order; older launch files had none.
    node_specs: list[dict[str, Any]] = launch.get("tasks") or [{"node": "", "env": {}}]
    labelled = len(node_specs) > 1
    started_at = _now_iso()
    tasks: list[_Task] = []
    sampling: dict[str, Any] = launch.get("gpu_sampling") or {}
    gpu: dict[str, Any] = {"monitor": None, "note": (
        "the job's command did not start" if float(sampling.get("interval_s") or 0.0) > 0
        else "GPU use sampling is off (RECHENWERK_GPU_SAMPLE_INTERVAL_S=0)")}

    metering: dict[str, Any] = launch.get("energy") or {}
    energy: dict[str, Any] = {"meter": None, "note": (
        "the job's command did not start" if float(metering.get("interval_s") or 0.0) > 0
        else "energy metering is off")}

    def finish(state: str, exit_code: int | None, reason: str | None) -> int:
        monitor: GpuMonitor | None = gpu["monitor"]
        gpu_use = monitor.stop() if monitor is not None else None
        meter: EnergyMeter | None = energy["meter"]
        energy_use = meter.stop() if meter is not None else None
        if meter is not None and energy_use is None:
            energy["note"] = "the energy counters gave fewer than two readings"
        if monitor is not None and gpu_use is None:
            gpu["note"] = "no GPU reading was taken (the job ended before the first sample)"
        if cgroup is not None:  # nothing the job started outlives it
            cgroup.kill_others()
            cgroup.remove()
        # The logs are complete before the verdict is visible (one deadline for all).
        drain_until = time.monotonic() + PUMP_JOIN_S
        for pump in (p for t in tasks for p in t.pumps):
            pump.join(max(0.0, drain_until - time.monotonic()))
        record = {
            "state": state,
            "exit_code": exit_code,
            "started_at": started_at,
            "ended_at": _now_iso(),
            "reason": reason,
            "gpu_use": gpu_use.to_json() if gpu_use is not None else None,
            "gpu_use_note": None if gpu_use is not None else gpu["note"],
            "energy": energy_use.to_json() if energy_use is not None else None,
            "energy_note": None if energy_use is not None else energy["note"],
        }
        write_atomic(run_dir / "status.json", json.dumps(record))
        return 0

    # A stop may have been requested before we got here (cancel right after submit).
    if (run_dir / "stop").exists():
        kind = (run_dir / "stop").read_text().strip() or "cancel"
        return finish("preempted" if kind == "preempt" else "cancelled", None,
                      f"{kind} requested before the command started")

    # <logs>/<job>/<attempt>: the job's account owns both folders, so an earlier run may
    # have planted links there; open without following them (job_files.py)
    log_root, log_parts = split_attempt_dir(launch["log_dir"])
    workdir = launch["workdir"]
    master_port = str(free_port())
    if launch.get("sandboxed"):
        # The sandbox would report these as its own failure; say what the user got wrong.
        env0 = dict(launch["env"])
        problem = _precheck(argv[0], workdir, env0.get("PATH", os.defpath))
        if problem is not None:
            return finish("failed", *problem)
    fds: list[int] = []
    try:
        for name in ("stdout.log", "stderr.log"):
            fds.append(open_job_file(log_root, log_parts, name, append=True,
                                     create_dirs=True))
    except UnsafeJobPath as exc:
        for fd in fds:
            os.close(fd)
        return finish("failed", None, exc.message)
    out_fd, err_fd = fds
    with open(out_fd, "ab") as out, open(err_fd, "ab") as err:
        logs = (_LabelledLog(out), _LabelledLog(err)) if labelled else None
        for rank, spec in enumerate(node_specs):
            env = dict(launch["env"])
            env.update(spec.get("env") or {})
            env["MASTER_PORT"] = master_port
            try:
                proc = subprocess.Popen(
                    spec.get("argv") or argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if labelled else out,
                    stderr=subprocess.PIPE if labelled else err,
                    start_new_session=True,  # own process group: signals reach every child
                    close_fds=True,
                )
            except OSError as exc:
                # The same argv and workdir for every node: this is rank 0 in practice.
                _terminate(tasks, grace_s)
                return finish("failed", *_launch_failure(exc, argv, workdir))
            task = _Task(rank, str(spec.get("node") or ""), proc)
            if logs is not None:
                for pipe, log in ((proc.stdout, logs[0]), (proc.stderr, logs[1])):
                    assert pipe is not None
                    pump = threading.Thread(target=log.pump, args=(pipe, task.node),
                                            name=f"pump-{task.node}", daemon=True)
                    pump.start()
                    task.pumps.append(pump)
            tasks.append(task)

        started_at = _now_iso()
        # the first energy reading before the run is visible as started
        energy["meter"], energy["note"] = _energy_meter(metering, node_specs, energy["note"])
        write_atomic(run_dir / "started.json", json.dumps({
            "pid": tasks[0].proc.pid,
            "pids": [t.proc.pid for t in tasks],
            "nodes": [t.node for t in tasks],
            "master_port": int(master_port),
            "started_at": started_at,
        }))
        gpu["monitor"], gpu["note"] = _gpu_monitor(sampling, node_specs, gpu["note"])
        return _supervise(tasks, stop, finish, grace_s=grace_s, walltime_s=walltime_s,
                          labelled=labelled)


def _gpu_monitor(sampling: dict[str, Any], node_specs: list[dict[str, Any]],
                 note: str) -> tuple[GpuMonitor | None, str]:
    """The running monitor of the job's GPUs, or None and why they are not measured."""
    interval = float(sampling.get("interval_s") or 0.0)
    if interval <= 0.0:
        return None, note
    indices = visible_indices(spec.get("env") or {} for spec in node_specs)
    if not indices:
        return None, "the job has no GPUs to measure"
    sampler, why = NvmlSampler.open()
    if sampler is None:
        return None, why or "NVML is not available"
    idle = float(sampling.get("idle_below_pct", DEFAULT_IDLE_BELOW_PCT))
    return GpuMonitor(sampler, indices, interval_s=interval,
                      idle_below_pct=idle).start(), note


def _energy_meter(metering: dict[str, Any], node_specs: list[dict[str, Any]],
                  note: str) -> tuple[EnergyMeter | None, str]:
    """The started meter of the run's energy, or None and why it is not measured."""
    interval = float(metering.get("interval_s") or 0.0)
    if interval <= 0.0:
        return None, note
    indices = visible_indices(spec.get("env") or {} for spec in node_specs)
    meter, why = open_meter(indices, share=float(metering.get("share") or 1.0),
                            interval_s=interval,
                            powercap_root=Path(metering.get("powercap_root")
                                               or POWERCAP_ROOT),
                            inventory_nodes=int(metering.get("inventory_nodes") or 1))
    if meter is None:
        return None, why or "energy not measured"
    return meter.start(), note


def _join_cgroup(name: str, spec: dict[str, Any] | None) -> JobCgroup | None:
    if not spec:
        return None
    group, problem = JobCgroup.create(name, pids_max=int(spec["pids_max"]),
                                      memory_bytes=spec.get("memory_bytes"))
    if problem:
        sys.stderr.write(f"cgroup limits incomplete: {problem}\n")
    return group


def _precheck(command: str, workdir: str, path: str) -> tuple[int, str] | None:
    """The launch failures the old direct exec reported, checked before the sandbox."""
    if not Path(workdir).exists():
        return 127, f"working directory not found: {workdir}"
    if not Path(workdir).is_dir():
        return 126, f"working directory is not a directory: {workdir}"
    if "/" in command:
        target = Path(workdir) / command
        if not target.exists():
            return 127, f"command not found: {command}"
        if target.is_dir() or not os.access(target, os.X_OK):
            return 126, f"command is not executable: {command}"
        return None
    if shutil.which(command, path=path) is None:
        return 127, f"command not found: {command}"
    return None


def _launch_failure(exc: OSError, argv: list[str], workdir: str) -> tuple[int, str]:
    if isinstance(exc, FileNotFoundError):
        missing = exc.filename if exc.filename is not None else argv[0]
        if str(missing) == str(workdir):
            return 127, f"working directory not found: {workdir}"
        return 127, f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return 126, f"command is not executable: {argv[0]}"
    if isinstance(exc, NotADirectoryError):
        return 126, f"working directory is not a directory: {workdir}"
    return 126, f"could not start {argv[0]}: {exc.strerror or exc}"


def _describe(rc: int) -> str:
    if rc < 0:
        return f"killed by signal {signal.Signals(-rc).name}"
    return f"exit code {rc}"


_Finish = Callable[[str, int | None, str | None], int]


def _supervise(tasks: list[_Task], stop: _Stop, finish: _Finish, *, grace_s: float,
               walltime_s: float, labelled: bool) -> int:
    deadline = time.monotonic() + walltime_s
    while True:
        failed = next((t for t in tasks if t.poll() not in (None, 0)), None)
        if failed is not None:
            assert failed.rc is not None
            if not labelled:
                return finish("failed", failed.rc, _describe(failed.rc))
            # --kill-on-bad-exit: one failed node process ends the whole job.
            _terminate(tasks, grace_s)
            return finish("failed", failed.rc,
                          f"{_describe(failed.rc)} on {failed.node} (node rank "
                          f"{failed.rank}); the other node processes were stopped")
        if all(t.rc == 0 for t in tasks):
            return finish("completed", 0, None)
        if stop.requested is not None:
            kind = stop.requested
            _terminate(tasks, grace_s)
            if kind == "preempt":
                return finish("preempted", _exit_code(tasks),
                              "preempted: stopped with SIGTERM to be requeued")
            return finish("cancelled", _exit_code(tasks), "cancelled")
        if time.monotonic() >= deadline:
            _terminate(tasks, grace_s)
            return finish("timeout", _exit_code(tasks),
                          f"walltime of {int(walltime_s)} s exceeded")
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m rechenwerk.execution.local_supervisor RUN_DIR\n")
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
