"""Batch script generation: a LaunchRequest -> a SubmitSpec (argv-safe fields plus a
bash script in which every user-supplied string is ``shlex.quote``-d).

Safety rules (tested with hostile input in ``tests/slurm/test_script.py``):

* The job name goes to Slurm only as a separate argv item / JSON field, sanitized to
  ``[A-Za-z0-9._-]``; it never appears in the script.
* Commands are argv tuples: each item is quoted; nothing is evaluated by the shell.
* Environment names must be identifiers; values are quoted.
* A script body is copied verbatim into a file beside the logs and executed as a
  program; it is the user's code by definition and is never spliced into our script.
* Paths in Slurm's ``--output`` patterns get ``%`` doubled, so ``%j`` in a user path is
  not expanded.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import LaunchRequest
from rechenwerk.execution.slurm.containers import wrap
from rechenwerk.execution.slurm.types import SubmitSpec

_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Environment the service never hands to jobs.
_RESERVED_ENV_PREFIXES = ("SLURM_", "RECHENWERK_")
# Base environment of every job (the submitting service's own env never leaks).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


_GRES_TYPE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_gpu_types(gpu_types: Mapping[str, str]) -> dict[str, str]:
    """Validate the operator's map of Rechenwerk GPU types to Slurm GRES types."""
    for ours, theirs in gpu_types.items():
        if not _GRES_TYPE.match(theirs):
            raise InvalidInput(
                f"Slurm GRES type {theirs!r} (for GPU type {ours!r}) is not a GRES type name",
                field="slurm_gpu_types",
                hint="Use the Type= names of the cluster's gres.conf, e.g. "
                '{"A100-80GB": "a100"}.',
            )
    return dict(gpu_types)


def gres_type(gpu_type: str | None, gpu_types: Mapping[str, str]) -> str | None:
    """The GRES type for a job's ``gpu_type``. An empty map (the default) means untyped
    requests (``gpu:N``); with a map, a type it does not name is refused, so a job
    charged to an award for one GPU type never lands on another."""
    if not gpu_type or not gpu_types:
        return None
    found = gpu_types.get(gpu_type)
    if found is None:
        found = {k.casefold(): v for k, v in gpu_types.items()}.get(gpu_type.casefold())
    if found is None:
        raise InvalidInput(
            f"GPU type {gpu_type!r} has no Slurm GRES type on this cluster",
            field="gpu_type",
            hint=f"Known here: {', '.join(sorted(gpu_types))} "
            "(operators: RECHENWERK_SLURM_GPU_TYPES).",
        )
    return found


def sanitize_job_name(name: str, fallback: str = "job") -> str:
    """Slurm-safe job name: ``[A-Za-z0-9._-]``, at most 64 characters, never empty."""
    cleaned = _NAME_BAD.sub("_", name).strip("_.-")[:64]
    return cleaned or fallback


def slurm_path(path: str) -> str:
    """A literal path for Slurm's ``--output``/``--error`` (``%`` starts a pattern)."""
    if "\n" in path or "\0" in path:
        raise InvalidInput("log path contains a newline or NUL byte", field="log_dir")
    return path.replace("%", "%%")


# Slurm reservations Rechenwerk manages carry this prefix (jobs/slurm_reservations.py);
# the sync never touches others.
RESERVATION_PREFIX = "rw-"


def slurm_reservation(name: str | None) -> str | None:
    """The Slurm name of Rechenwerk's reservation ``name`` (sbatch --reservation)."""
    return None if name is None else RESERVATION_PREFIX + name


def check_account(project: str) -> str:
    if not _ACCOUNT.match(project):
        raise InvalidInput(
            f"project {project!r} is not a valid Slurm account name",
            field="project",
            hint="Slurm accounts are lower-case letters, digits, '.', '_' and '-' "
            "(at most 64 characters); the project slug is used as the account.",
        )
    return project


def job_environment(request: LaunchRequest) -> dict[str, str]:
    """Variables the job sees besides Slurm's own (validated, not yet quoted)."""
    env: dict[str, str] = {}
    for key, value in request.env.items():
        if not _ENV_NAME.match(key):
            raise InvalidInput(
                f"environment variable name {key!r} is not a shell identifier",
                field=f"env.{key}",
                hint="Use letters, digits and '_' and do not start with a digit.",
            )
        if key.startswith(_RESERVED_ENV_PREFIXES):
            raise InvalidInput(
                f"environment variable {key!r} is reserved",
                field=f"env.{key}",
                hint="SLURM_* and RECHENWERK_* are set by the platform.",
            )
        if "\0" in value:
            raise InvalidInput(
                f"environment value of {key} contains a NUL byte", field=f"env.{key}"
            )
        env[key] = value
    env.update(
        {
            "RECHENWERK_JOB_ID": str(request.job_id),
            "RECHENWERK_JOB_NAME": request.name,
            "RECHENWERK_PROJECT": request.project,
            "RECHENWERK_GPUS": str(request.gpus),
            "RECHENWERK_NUM_NODES": str(request.nodes),
            "RECHENWERK_WALLTIME_S": str(request.walltime_s),
            "RECHENWERK_LOG_DIR": request.log_dir,
        }
    )
    if request.checkpoint_interval_s:
        env["RECHENWERK_CHECKPOINT_INTERVAL_S"] = str(request.checkpoint_interval_s)
    return env


def user_script_path(request: LaunchRequest) -> Path:
    return Path(request.log_dir) / f"job-script.{request.attempt}"


def render_script(request: LaunchRequest, env: Mapping[str, str],
                  tasks: Sequence[LaunchRequest] = (),
                  container_runtime: tuple[str, ...] = ()) -> str:
    """The batch script. Only quoted user strings and integers are interpolated.
    ``tasks``: the script of a Slurm job array, one Rechenwerk job per task: each task
    picks its job id and log directory by ``SLURM_ARRAY_TASK_ID``."""
    if request.command:
        argv = [str(a) for a in request.command]
    elif request.script is not None:
        path = str(user_script_path(request))
        argv = [path] if request.script.startswith("#!") else ["/bin/sh", path]
    else:
        raise InvalidInput(
            "the job has neither a command nor a script",
            field="command",
            hint="Give a command (argv list) or a script body.",
        )
    if any("\0" in a for a in argv):
        raise InvalidInput("a command argument contains a NUL byte", field="command")
    argv = wrap(argv, request.container_image, container_runtime)
    lines = [
        "#!/bin/bash",
        f"# generated by Rechenwerk: attempt {int(request.attempt)}",
        "set -o pipefail",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    if tasks:
        lines += _array_prologue(tasks)
    lines.append('export RECHENWERK_NODELIST="${SLURM_JOB_NODELIST:-}"')
    # Slurm may requeue the job under the same id (node failure, preemption): the same
    # script runs again with SLURM_RESTART_COUNT set, as Rechenwerk's next attempt.
    lines += [
        'rw_restarts="${SLURM_RESTART_COUNT:-0}"',
        'case "$rw_restarts" in ""|*[!0-9]*) rw_restarts=0 ;; esac',
        f"export RECHENWERK_ATTEMPT=$(({int(request.attempt)} + rw_restarts))",
    ]
    log_dir = Path(request.log_dir)
    if tasks:  # each task's own <...>/logs/<job>/<attempt>
        lines += [
            'if [ "$rw_restarts" -gt 0 ]; then',
            '  rw_log="$(dirname "$RECHENWERK_LOG_DIR")/$RECHENWERK_ATTEMPT"',
            '  if mkdir -p "$rw_log" 2>/dev/null; then',
            '    exec >>"$rw_log/stdout.log" 2>>"$rw_log/stderr.log"',
            '    export RECHENWERK_LOG_DIR="$rw_log"',
            "  fi",
            "fi",
        ]
    elif log_dir.name == str(request.attempt):  # <...>/logs/<job>/<attempt>: Rechenwerk's
        # layout; a restarted run writes to its own attempt's directory when it can
        lines += [
            'if [ "$rw_restarts" -gt 0 ]; then',
            f'  rw_log={shlex.quote(str(log_dir.parent))}/"$RECHENWERK_ATTEMPT"',
            '  if mkdir -p "$rw_log" 2>/dev/null; then',
            '    exec >>"$rw_log/stdout.log" 2>>"$rw_log/stderr.log"',
            '    export RECHENWERK_LOG_DIR="$rw_log"',
            "  fi",
            "fi",
        ]
    lines.append(f"cd {shlex.quote(request.workdir)} || exit 1")
    # The rendezvous variables the local executor gives a job, so one recipe (torchrun,
    # init_process_group) runs unchanged on both backends. The batch script runs on the
    # allocation's first node: it is the rendezvous host; the port is derived from the
    # job id (stable across a requeue, distinct between jobs on a node).
    lines += [
        f"export RECHENWERK_GPUS_PER_NODE={int(request.gpus_per_node)}",
        f'export NNODES="${{SLURM_NNODES:-{int(request.nodes)}}}"',
        f'export RECHENWERK_NUM_NODES="${{SLURM_NNODES:-{int(request.nodes)}}}"',
        'export MASTER_ADDR="$(hostname)"',
        "export MASTER_PORT=$((20000 + ${SLURM_JOB_ID:-0} % 20000))",
    ]
    quoted = " ".join(shlex.quote(a) for a in argv)
    if request.nodes > 1:
        # One task per node; srun starts the program on every node of the allocation.
        # The per-node rank comes from each task's own SLURM_NODEID through a fixed
        # wrapper; the user's argv is passed as its arguments, never into its text.
        rank = ('export NODE_RANK="$SLURM_NODEID" RECHENWERK_NODE_RANK="$SLURM_NODEID" '
                'RECHENWERK_NODE_NAME="$SLURMD_NODENAME"; exec "$@"')
        lines.append("exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 -- "
                     f"/bin/sh -c {shlex.quote(rank)} rechenwerk-task {quoted}")
    else:
        lines += [
            'export NODE_RANK=0 RECHENWERK_NODE_RANK=0',
            'export RECHENWERK_NODE_NAME="${SLURMD_NODENAME:-$(hostname)}"',
            f"exec {quoted}",
        ]
    return "\n".join(lines) + "\n"


def _array_prologue(tasks: Sequence[LaunchRequest]) -> list[str]:
    """Which Rechenwerk job this array task is (``case`` on SLURM_ARRAY_TASK_ID: its job
    id and log directory), its output sent to that job's logs, and the variables the
    local executor gives an array task."""
    lines = ['case "${SLURM_ARRAY_TASK_ID:-}" in']
    for t in tasks:
        assert t.array is not None
        lines.append(f"  {int(t.array.task_id)}) export RECHENWERK_JOB_ID="
                     f"{shlex.quote(str(t.job_id))} RECHENWERK_LOG_DIR="
                     f"{shlex.quote(t.log_dir)} ;;")
    lines += [
        '  *) echo "rechenwerk: array task ${SLURM_ARRAY_TASK_ID:-?} is not one of this '
        'array\'s" >&2; exit 1 ;;',
        "esac",
        'exec >>"$RECHENWERK_LOG_DIR/stdout.log" 2>>"$RECHENWERK_LOG_DIR/stderr.log"',
    ]
    first = tasks[0].array
    assert first is not None
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(first.environment().items())
              if k != "RECHENWERK_ARRAY_TASK_ID"]
    lines.append('export RECHENWERK_ARRAY_TASK_ID="$SLURM_ARRAY_TASK_ID"')
    return lines


def array_expression(tasks: Sequence[LaunchRequest], limit: int | None) -> str:
    """``sbatch --array`` of these tasks: their indices as ranges, then ``%N``."""
    indices = sorted(int(t.array.task_id) for t in tasks if t.array is not None)
    parts: list[str] = []
    i = 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        parts.append(str(indices[i]) if i == j else f"{indices[i]}-{indices[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{int(limit)}" if limit else "")


def build_array_submit_spec(
    tasks: Sequence[LaunchRequest],
    *,
    partition: str,
    qos_map: Mapping[str, str] | None = None,
    submit_as_user: bool = True,
    gpu_types: Mapping[str, str] | None = None,
    container_runtime: tuple[str, ...] = (),
) -> SubmitSpec:
    """ONE Slurm job array (``sbatch --array=<indices>%N``) for tasks of one Rechenwerk
    array (same spec; each its own job id, log directory and index). Slurm's own output
    (e.g. its time-limit message) goes to ``slurm-task-<index>.{out,err}`` in the first
    task's log directory; the program's output to each task's own logs."""
    if not tasks or any(t.array is None for t in tasks):
        raise InvalidInput("a Slurm job array needs tasks of a Rechenwerk array", field="array")
    head = tasks[0]
    spec = build_submit_spec(head, partition=partition, qos_map=qos_map,
                             submit_as_user=submit_as_user, gpu_types=gpu_types,
                             container_runtime=container_runtime)
    env = {k: v for k, v in job_environment(head).items()
           if k not in ("RECHENWERK_JOB_ID", "RECHENWERK_LOG_DIR")}
    for t in tasks:
        if "\n" in t.log_dir or "\0" in t.log_dir:
            raise InvalidInput("log path contains a newline or NUL byte", field="log_dir")
    base = slurm_path(str(Path(head.log_dir) / "slurm-task-"))
    assert head.array is not None
    return replace(spec, script=render_script(head, env, tasks, container_runtime),
                   array=array_expression(tasks, head.array.task_limit),
                   stdout=base + "%a.out", stderr=base + "%a.err")


def time_limit_minutes(walltime_s: int) -> int:
    if walltime_s <= 0:
        raise InvalidInput(
            f"walltime must be positive, got {walltime_s} s",
            field="walltime_s",
            hint="Give the walltime in seconds, e.g. 3600.",
        )
    return max(1, math.ceil(walltime_s / 60))


def build_submit_spec(
    request: LaunchRequest,
    *,
    partition: str,
    qos_map: Mapping[str, str] | None = None,
    submit_as_user: bool = True,
    gpu_types: Mapping[str, str] | None = None,
    container_runtime: tuple[str, ...] = (),
) -> SubmitSpec:
    """Validate a LaunchRequest and turn it into a SubmitSpec."""
    if request.nodes < 1:
        raise InvalidInput("a job needs at least one node", field="nodes")
    if request.gpus_per_node < 0 or request.gpus < 0:
        raise InvalidInput("GPU counts cannot be negative", field="gpus")
    if request.gpus and request.gpus != request.nodes * request.gpus_per_node:
        raise InvalidInput(
            f"gpus={request.gpus} is not nodes x gpus_per_node "
            f"({request.nodes} x {request.gpus_per_node})",
            field="gpus",
            hint="Slurm allocates the same number of GPUs on every node of a job.",
        )
    env = job_environment(request)
    log_dir = request.log_dir
    qos = (qos_map or {}).get(request.qos, request.qos) if request.qos else None
    return SubmitSpec(
        script=render_script(request, env, container_runtime=container_runtime),
        name=sanitize_job_name(request.name),
        account=check_account(request.project),
        partition=partition,
        qos=qos,
        time_limit_min=time_limit_minutes(request.walltime_s),
        nodes=request.nodes,
        gpus_per_node=request.gpus_per_node,
        gpu_type=gres_type(request.gpu_type, gpu_types or {}),
        workdir=request.workdir,
        stdout=slurm_path(str(Path(log_dir) / "stdout.log")),
        stderr=slurm_path(str(Path(log_dir) / "stderr.log")),
        comment=f"rechenwerk:{sanitize_job_name(str(request.job_id))}.{int(request.attempt)}",
        user=request.user if submit_as_user else None,
        environment=dict(BASE_ENV),
        dependency=dependency_expression(request.after),
        reservation=slurm_reservation(request.reservation),
    )


_SLURM_DEPENDENCY_TYPES = {"after_ok": "afterok", "after_any": "afterany",
                           "after_not_ok": "afternotok"}


def dependency_expression(after: Sequence[tuple[str, str]]) -> str | None:
    """Slurm's ``--dependency`` for (kind, handle) pairs: ``afterok:12:13,afterany:14``
    (all must hold: Slurm's ``,``). Handles are Slurm job ids."""
    by_type: dict[str, list[str]] = {}
    for kind, handle in after:
        if kind not in _SLURM_DEPENDENCY_TYPES:
            raise InvalidInput(f"unknown dependency kind {kind!r}", field="depends_on")
        by_type.setdefault(_SLURM_DEPENDENCY_TYPES[kind], []).append(_slurm_job_id(handle))
    return ",".join(f"{t}:{':'.join(ids)}" for t, ids in by_type.items()) or None


def _slurm_job_id(handle: str) -> str:
    jid = handle.split(";", 1)[0].strip()
    if not jid.isdecimal():
        raise InvalidInput(f"{handle!r} is not a Slurm job id", field="depends_on")
    return jid
