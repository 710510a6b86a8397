"""The local executor: jobs run as real processes on this machine over an emulated GPU
inventory (e.g. 2 nodes x 8 A100). Rechenwerk's scheduling core decides the placement;
this backend only launches, stops and watches.

Each job attempt runs under a detached supervisor process
(:mod:`rechenwerk.execution.local_supervisor`) that owns the walltime and writes the
final status file, so jobs keep running — and finish with their real end time recorded —
while the server is down. The opaque handle is the run directory's name
(``<job_id>.<attempt>``) under ``<data_dir>/runs/``; a new server process finds the job
from the handle alone.

Multi-node jobs behave like ``srun --ntasks-per-node=1 --kill-on-bad-exit`` on Slurm:
the command runs once per allocated node, each process with its own node's GPUs in
``CUDA_VISIBLE_DEVICES``, its rank and the PyTorch rendezvous variables (``MASTER_ADDR``
= 127.0.0.1, ``MASTER_PORT``, ``NODE_RANK``, ``NNODES``), so a ``torchrun``/DDP recipe
runs unchanged on both backends. :meth:`LocalExecutor.node_envs` builds each node's
variables; the supervisor adds the port and gangs the processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rechenwerk.errors import BackendError, InvalidInput
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    GpuSlice,
    LaunchRequest,
    NodeInventory,
    ReconcileReport,
)
from rechenwerk.execution.energy_meter import DEFAULT_INTERVAL_S, POWERCAP_ROOT, EnergyUse
from rechenwerk.execution.gpu_use import DEFAULT_IDLE_BELOW_PCT, GpuUse
from rechenwerk.execution.local_supervisor import write_atomic
from rechenwerk.execution.sandbox import Sandbox
from rechenwerk.job_files import open_dir_chain, split_attempt_dir

# Environment variables of the server that never leak into jobs.
_PRIVATE_ENV_PREFIXES = ("RECHENWERK_",)
# All node processes of a job run on this machine: the rendezvous is on loopback.
MASTER_ADDR = "127.0.0.1"
# Bounds on the emulated inventory (docs/jobs.md, docs/security.md): one machine
# emulates it, and every node is a row and a supervisor, so a typo such as 10000000x8
# must not build millions of nodes.
MAX_LOCAL_NODES = 4096
MAX_LOCAL_GPUS_PER_NODE = 256



def parse_local_cluster(spec: str) -> tuple[NodeInventory, ...]:
    """``"NODESxGPUS[:GPU_TYPE]"`` (e.g. ``"2x8:A100-80GB"``) or a YAML file::

        nodes:
          - {name: node01, gpus: 8, gpu_type: A100-80GB, block: b0}
          - {count: 4, gpus: 8, gpu_type: H100, prefix: h, block: b1}
    """
    spec = spec.strip()
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return _parse_cluster_yaml(Path(spec))
    shape, _, gpu_type = spec.partition(":")
    n_str, sep, g_str = shape.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        n_nodes, gpus = int(n_str), int(g_str)
    except ValueError:
        raise InvalidInput(
            f"local cluster {spec!r} is not NODESxGPUS[:GPU_TYPE] nor a YAML file",
            field="local_cluster",
            hint='Set RECHENWERK_LOCAL_CLUSTER to e.g. "2x8:A100-80GB" or a path to a YAML file.',
        ) from None
    if n_nodes <= 0 or gpus <= 0:
        raise InvalidInput(
            f"local cluster {spec!r} needs at least one node and one GPU per node",
            field="local_cluster",
            hint='Use e.g. "2x8:A100-80GB".',
        )
    _check_local_size(n_nodes, gpus, f"local cluster {spec!r}")
    width = max(2, len(str(n_nodes)))
    gtype = gpu_type.strip() or "GPU"
    return tuple(NodeInventory(f"node{i:0{width}d}", gpus, gtype) for i in range(1, n_nodes + 1))


def _check_local_size(nodes: int, gpus_per_node: int, where: str) -> None:
    if nodes > MAX_LOCAL_NODES or gpus_per_node > MAX_LOCAL_GPUS_PER_NODE:
        what, limit = (("nodes", MAX_LOCAL_NODES) if nodes > MAX_LOCAL_NODES
                       else ("GPUs per node", MAX_LOCAL_GPUS_PER_NODE))
        raise InvalidInput(
            f"{where} has more {what} than the limit of {limit:,}",
            field="local_cluster",
            hint=f"The local executor emulates at most {MAX_LOCAL_NODES:,} nodes of at most "
            f"{MAX_LOCAL_GPUS_PER_NODE} GPUs.",
        )


def _parse_cluster_yaml(path: Path) -> tuple[NodeInventory, ...]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"cluster file {path} does not exist", field="local_cluster") from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        reason = "is nested too deeply" if isinstance(exc, RecursionError) else (
            f"cannot be read as UTF-8 text: {exc}")
        raise InvalidInput(f"cluster file {path} {reason}", field="local_cluster") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"cluster file {path} is not valid YAML: {exc}",
                           field="local_cluster") from None
    entries = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidInput(f"cluster file {path} needs a non-empty 'nodes' list",
                           field="local_cluster")
    nodes: list[NodeInventory] = []
    for i, entry in enumerate(entries):
        where = f"{path}: nodes[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{where} must be a mapping", field="local_cluster")
        try:
            gpus = int(entry["gpus"])
            gtype = str(entry.get("gpu_type", "GPU"))
            block = str(entry.get("block", "block0"))
            count = int(entry.get("count", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: {exc!s} (needs gpus: int)",
                               field="local_cluster") from None
        if gpus <= 0 or count <= 0:
            raise InvalidInput(f"{where}: gpus and count must be positive", field="local_cluster")
        _check_local_size(len(nodes) + count, gpus, where)
        if "name" in entry and count == 1:
            nodes.append(NodeInventory(str(entry["name"]), gpus, gtype, block))
        else:
            prefix = str(entry.get("prefix", "node"))
            start = sum(1 for n in nodes if n.name.startswith(prefix)) + 1
            nodes.extend(NodeInventory(f"{prefix}{j:02d}", gpus, gtype, block)
                         for j in range(start, start + count))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise InvalidInput(f"cluster file {path} has duplicate node names", field="local_cluster")
    return tuple(nodes)


def check_workdir(workdir: str, data_dir: Path, own_dir: Path) -> None:
    """A sandboxed job's working directory is shown to it read-write: never the data
    directory nor a folder inside it but the job's own (one above it is fine: the
    sandbox hides the data directory inside it)."""
    work, data = Path(workdir).resolve(), Path(data_dir).resolve()
    own = Path(own_dir).resolve()
    if (work == data or data in work.parents) and work != own:
        raise BackendError(
            f"workdir {workdir} would show the server's data directory ({data_dir}) to the job",
            hint="Give a working directory of your own outside the data directory.")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is a local supervisor (guards against pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read()
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    # A zombie (state Z) has exited; it only waits for its parent to reap it.
    state = stat.rsplit(b")", 1)[-1].split()[0:1]
    if state == [b"Z"]:
        return False
    return b"local_supervisor" in cmd


class LocalExecutor:
    """Runs jobs as supervised local processes. Thread-safe."""

    name = "local"
    capabilities = BackendCapabilities(
        schedules_itself=False,
        multi_node=True,  # one process per allocated node, ganged like srun
        graceful_preemption=True,
        imports_foreign_jobs=False,
    )

    def __init__(
        self,
        data_dir: Path,
        *,
        cluster: str | Sequence[NodeInventory] = "2x8:A100-80GB",
        kill_grace_s: float = 10.0,
        python: str | None = None,
        sandbox: Sandbox | None = None,
        pids_max: int | None = None,
        mem_per_gpu_mb: int = 0,
        gpu_sample_interval_s: float = 0.0,
        gpu_idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT,
        energy_interval_s: float = DEFAULT_INTERVAL_S,
        powercap_root: Path = POWERCAP_ROOT,
    ) -> None:
        self.runs_dir = Path(data_dir) / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.nodes: tuple[NodeInventory, ...] = (
            parse_local_cluster(cluster) if isinstance(cluster, str) else tuple(cluster)
        )
        self.kill_grace_s = kill_grace_s
        self.python = python or sys.executable
        self.data_dir = Path(data_dir)
        # None: jobs run as the server's account and see what it sees (single-tenant).
        self.sandbox = sandbox
        # Per-job cgroup limits (None: no cgroup); memory scales with the job's GPUs.
        self.pids_max = pids_max
        self.mem_per_gpu_mb = mem_per_gpu_mb
        # NVML sampling of each job's GPUs by its supervisor (0: off).
        self.gpu_sample_interval_s = gpu_sample_interval_s
        self.gpu_idle_below_pct = gpu_idle_below_pct
        # Energy counters (NVML, else RAPL) read by each job's supervisor (0: off).
        self.energy_interval_s = energy_interval_s
        self.powercap_root = Path(powercap_root)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # --- inventory -------------------------------------------------------------------
    def inventory(self) -> tuple[NodeInventory, ...]:
        return self.nodes

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    # --- protocol --------------------------------------------------------------------
    def run_dir(self, handle: str) -> Path:
        if not handle or "/" in handle or handle.startswith("."):
            raise BackendError(f"malformed local handle {handle!r}")
        return self.runs_dir / handle

    def submit(self, request: LaunchRequest) -> str:
        handle = f"{request.job_id}.{request.attempt}"
        run_dir = self.run_dir(handle)
        if (run_dir / "launch.json").exists():
            # The same attempt was launched before (e.g. a retried apply): never twice.
            return handle
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = self._argv(request, run_dir)
        common, per_node = self.node_envs(request)
        tasks: list[dict[str, Any]] = [{"node": name, "env": env} for name, env in per_node]
        if self.sandbox is not None:
            self._sandbox_tasks(request, run_dir, argv, common, tasks)
        launch = {
            "argv": argv,
            "env": common,
            # rank order; the supervisor starts one process per entry
            "tasks": tasks,
            "sandboxed": self.sandbox is not None,
            "cgroup": self._cgroup_spec(request),
            "workdir": request.workdir,
            "log_dir": request.log_dir,
            "walltime_s": request.walltime_s,
            "kill_grace_s": self.kill_grace_s,
            "job_id": request.job_id,
            "attempt": request.attempt,
            "gpu_sampling": {"interval_s": self.gpu_sample_interval_s,
                             "idle_below_pct": self.gpu_idle_below_pct},
            # RAPL counts the whole machine: the job is charged its share of the GPUs
            "energy": {"interval_s": self.energy_interval_s,
                       "share": min(1.0, request.gpus / self.total_gpus)
                       if self.total_gpus else 1.0,
                       "powercap_root": str(self.powercap_root),
                       "inventory_nodes": len(self.nodes)},
        }
        write_atomic(run_dir / "launch.json", json.dumps(launch))
        try:
            with open(run_dir / "supervisor.log", "ab") as log:
                proc = subprocess.Popen(
                    [self.python, "-m", "rechenwerk.execution.local_supervisor", str(run_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # detached: survives the server
                    close_fds=True,
                    env=self._supervisor_env(),
                )
        except OSError as exc:
            (run_dir / "launch.json").unlink(missing_ok=True)
            raise BackendError(
                f"could not start the local supervisor: {exc}",
                hint="Check that the Python interpreter of the server is executable.",
            ) from exc
        write_atomic(run_dir / "supervisor.pid", str(proc.pid))
        with self._lock:
            self._children[handle] = proc
        return handle

    def cancel(self, handle: str) -> None:
        self._stop(handle, "cancel")

    def preempt(self, handle: str) -> None:
        self._stop(handle, "preempt")

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        self._reap()
        return {h: self._status(h) for h in handles}

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return ReconcileReport(known=self.poll(handles))

    def close(self) -> None:
        # Running jobs keep running under their supervisors; just reap what has ended.
        self._reap()

    def ping(self) -> None:
        """Ready when run records can be written (the data directory is there and ours)."""
        if not os.access(self.runs_dir, os.W_OK | os.X_OK):
            raise BackendError(f"the local executor cannot write {self.runs_dir}",
                               hint="Check RECHENWERK_DATA_DIR and its owner.")

    # --- isolation -------------------------------------------------------------------
    def _sandbox_tasks(self, request: LaunchRequest, run_dir: Path, argv: list[str],
                       env: dict[str, str], tasks: list[dict[str, Any]]) -> None:
        """Wrap every node's command in the sandbox, as the job's own account."""
        assert self.sandbox is not None
        own_dir = self.data_dir / "logs" / str(request.job_id)
        check_workdir(request.workdir, self.data_dir, own_dir)
        account = self.sandbox.account(request.user_id, request.project_id)
        script = run_dir / "job.sh"
        files = [str(script)] if request.script and not request.command else []
        owner = (account.uid, account.gid) if account is not None else None
        # The job's own folders belong to its account, private. An earlier run may have
        # planted a link as this attempt's folder: created and chowned without following
        # links (job_files.py).
        root, parts = split_attempt_dir(request.log_dir)
        with open_dir_chain(root, parts, create=True, owner=owner):
            pass
        own_dir.mkdir(parents=True, exist_ok=True)
        if account is not None:
            for path in (own_dir, *(Path(f) for f in files)):  # the script: server-private
                os.chown(path, account.uid, account.gid)
                path.chmod(0o700)
        env["HOME"] = request.workdir
        env["TMPDIR"] = "/tmp"
        env["USER"] = env["LOGNAME"] = request.user
        for task in tasks:
            task["argv"] = self.sandbox.wrap(
                argv, node=str(task["node"]), workdir=request.workdir,
                log_dir=str(own_dir), account=account, files=files)

    def _cgroup_spec(self, request: LaunchRequest) -> dict[str, Any] | None:
        if self.pids_max is None:
            return None
        memory = self.mem_per_gpu_mb * max(1, request.gpus) * 1024 * 1024
        return {"pids_max": self.pids_max, "memory_bytes": memory or None}

    # --- helpers ---------------------------------------------------------------------
    def _argv(self, request: LaunchRequest, run_dir: Path) -> list[str]:
        if request.command:
            return list(request.command)
        if request.script:
            script = run_dir / "job.sh"
            script.write_text(request.script)
            script.chmod(0o700)
            if request.script.startswith("#!"):
                return [str(script)]
            return ["/bin/sh", str(script)]
        raise BackendError(f"job {request.job_id} has neither a command nor a script")

    def _supervisor_env(self) -> dict[str, str]:
        # The supervisor reads no setting: it never holds the server's secrets (a job
        # of the same account could read them from /proc/<pid>/environ).
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def _slices(self, request: LaunchRequest) -> tuple[GpuSlice, ...]:
        if request.placement:
            return request.placement
        # No placement (a caller other than the scheduler loop): the first nodes.
        if request.nodes > len(self.nodes):
            raise BackendError(
                f"job {request.job_id} needs {request.nodes} nodes but the local cluster "
                f"has {len(self.nodes)}"
            )
        gpus = tuple(range(request.gpus_per_node))
        return tuple(GpuSlice(n.name, gpus) for n in self.nodes[: max(1, request.nodes)])

    def node_envs(
        self, request: LaunchRequest
    ) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
        """The job's environment: what every node process shares, and per node (rank
        order) its name and own variables. ``MASTER_PORT`` is added by the supervisor."""
        if self.sandbox is not None:
            env = self.sandbox.environment(os.environ)
        else:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(_PRIVATE_ENV_PREFIXES)}
        env.update(request.env)
        slices = self._slices(request)
        num_nodes = str(len(slices))
        env.update(
            {
                "RECHENWERK_JOB_ID": str(request.job_id),
                "RECHENWERK_JOB_NAME": request.name,
                "RECHENWERK_ATTEMPT": str(request.attempt),
                "RECHENWERK_PROJECT": request.project,
                "RECHENWERK_GPUS": str(request.gpus),
                "RECHENWERK_NUM_NODES": num_nodes,
                "RECHENWERK_NODELIST": ",".join(s.node for s in slices),
                "RECHENWERK_PLACEMENT": ";".join(
                    f"{s.node}:{','.join(str(i) for i in s.gpu_indices)}" for s in slices
                ),
                "RECHENWERK_WALLTIME_S": str(request.walltime_s),
                "RECHENWERK_LOG_DIR": request.log_dir,
                "MASTER_ADDR": MASTER_ADDR,
                "NNODES": num_nodes,
            }
        )
        if request.array is not None:
            env.update(request.array.environment())
        env.pop("MASTER_PORT", None)  # never a stale one: the supervisor picks it
        if request.checkpoint_interval_s:
            env["RECHENWERK_CHECKPOINT_INTERVAL_S"] = str(request.checkpoint_interval_s)
        per_node = [
            (
                s.node,
                {
                    "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in s.gpu_indices),
                    "RECHENWERK_NODE_NAME": s.node,
                    "RECHENWERK_NODE_RANK": str(rank),
                    "RECHENWERK_GPUS_PER_NODE": str(len(s.gpu_indices)),
                    "NODE_RANK": str(rank),
                },
            )
            for rank, s in enumerate(slices)
        ]
        return env, per_node

    def _reap(self) -> None:
        with self._lock:
            for handle, proc in list(self._children.items()):
                if proc.poll() is not None:
                    del self._children[handle]

    def _supervisor_pid(self, run_dir: Path) -> int | None:
        try:
            return int((run_dir / "supervisor.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _stop(self, handle: str, kind: str) -> None:
        run_dir = self.run_dir(handle)
        if not run_dir.exists() or (run_dir / "status.json").exists():
            return
        if not (run_dir / "stop").exists():
            write_atomic(run_dir / "stop", kind)
        self._reap()
        pid = self._supervisor_pid(run_dir)
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _status(self, handle: str) -> BackendJobStatus:
        try:
            run_dir = self.run_dir(handle)
        except BackendError:
            return BackendJobStatus(handle, BackendJobState.UNKNOWN, reason="malformed handle")
        status_file = run_dir / "status.json"
        if status_file.exists():
            rec = json.loads(status_file.read_text())
            return BackendJobStatus(
                handle=handle,
                state=BackendJobState(rec["state"]),
                started_at=_parse_time(rec.get("started_at")),
                ended_at=_parse_time(rec.get("ended_at")),
                exit_code=rec.get("exit_code"),
                reason=rec.get("reason"),
                gpu_use=GpuUse.from_json(rec.get("gpu_use")),
                gpu_use_note=rec.get("gpu_use_note"),
                energy=EnergyUse.from_json(rec.get("energy")),
                energy_note=rec.get("energy_note"),
            )
        if not (run_dir / "launch.json").exists():
            return BackendJobStatus(handle, BackendJobState.UNKNOWN,
                                    reason="no such job on the local executor")
        started: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            started = json.loads((run_dir / "started.json").read_text())
        pid = self._supervisor_pid(run_dir)
        if pid is not None and _pid_alive(pid):
            if started is None:
                return BackendJobStatus(handle, BackendJobState.PENDING, reason="launching")
            return BackendJobStatus(handle, BackendJobState.RUNNING,
                                    started_at=_parse_time(started.get("started_at")))
        if status_file.exists():  # finished between the two checks
            return self._status(handle)
        with self._lock:
            child = self._children.get(handle)
        if child is not None and child.poll() is None:
            return BackendJobStatus(handle, BackendJobState.PENDING, reason="launching")
        # The supervisor died without a verdict (killed -9, machine reboot): the job's own
        # processes (one process group per node) must not linger unsupervised.
        if started is not None:
            for pid in started.get("pids") or [started["pid"]]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGKILL)
        now = datetime.now(UTC)
        record = {
            "state": "failed",
            "exit_code": None,
            "started_at": started.get("started_at") if started else None,
            "ended_at": now.isoformat(),
            "reason": "the job's supervisor process disappeared (killed or machine restarted)",
        }
        with contextlib.suppress(OSError):
            # A stop that reached the supervisor before its signal handler was set
            # killed it: the job ended as asked, not by a fault.
            kind = (run_dir / "stop").read_text().strip()
            record["state"] = "preempted" if kind == "preempt" else "cancelled"
            record["reason"] = f"{kind} requested; the supervisor ended on the signal"
        write_atomic(status_file, json.dumps(record))
        return self._status(handle)

