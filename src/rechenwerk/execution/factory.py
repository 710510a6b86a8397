"""Build the execution backend the settings ask for."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.execution.sandbox import Sandbox, find_bwrap, is_root, parse_id_range, probe

log = logging.getLogger("rechenwerk.execution")


def resolve_sandbox(settings: Settings) -> tuple[Sandbox | None, str | None]:
    """The sandbox local jobs run in, or None (isolation off, or ``auto`` where
    bubblewrap does not work here), with a warning line to print; InvalidInput when
    ``RECHENWERK_LOCAL_ISOLATION=sandbox`` cannot be honoured."""
    mode = settings.local_isolation
    if mode == "off":
        return None, ("warning: RECHENWERK_LOCAL_ISOLATION=off: every job runs as the "
                      "server's account and can read its data; for one trusted user only")
    how = "install bubblewrap (Debian: apt-get install bubblewrap)"
    bwrap = find_bwrap()
    problem = None if bwrap else "bubblewrap (bwrap) is not installed"
    sandbox = None
    if bwrap:
        uids = gids = None
        if is_root() and settings.local_job_uids.strip():
            uids = parse_id_range(settings.local_job_uids, "RECHENWERK_LOCAL_JOB_UIDS")
            gids = (parse_id_range(settings.local_job_gids, "RECHENWERK_LOCAL_JOB_GIDS")
                    if settings.local_job_gids.strip() else uids)
        sandbox = Sandbox(
            bwrap=bwrap, data_dir=Path(settings.data_dir).resolve(), uids=uids, gids=gids,
            read_only=_paths(settings.local_sandbox_ro, "RECHENWERK_LOCAL_SANDBOX_RO"),
            read_write=_paths(settings.local_sandbox_rw, "RECHENWERK_LOCAL_SANDBOX_RW"),
            pass_env=frozenset(n.strip() for n in settings.local_pass_env.split(",")
                               if n.strip()))
        problem = probe(sandbox)
        how = "check that user namespaces are allowed (sysctl kernel.unprivileged_userns_clone)"
    if problem is None:
        return sandbox, None
    if mode == "sandbox":
        raise InvalidInput(f"RECHENWERK_LOCAL_ISOLATION=sandbox, but {problem}",
                           field="local_isolation", hint=f"{how.capitalize()}.")
    return None, (f"warning: jobs are NOT isolated from each other and the server: {problem}; "
                  f"{how}, or set RECHENWERK_LOCAL_ISOLATION=off to accept this")


def _paths(text: str, setting: str) -> tuple[str, ...]:
    paths = tuple(p for p in text.split(":") if p)
    for p in paths:
        if not p.startswith("/"):
            raise InvalidInput(f"{setting}: {p!r} is not an absolute path",
                               field=setting.removeprefix("RECHENWERK_").lower())
    return paths


def make_backend(settings: Settings) -> ExecutionBackend:
    """``settings.executor``: "local" (processes over an emulated GPU inventory) or "slurm"."""
    if settings.executor == "local":
        from rechenwerk.execution.local import LocalExecutor

        sandbox, warning = resolve_sandbox(settings)
        if warning:
            log.warning("%s", warning)
        return LocalExecutor(
            settings.data_dir,
            cluster=settings.local_cluster,
            kill_grace_s=settings.kill_grace_s,
            sandbox=sandbox,
            pids_max=settings.local_pids_max if sandbox is not None else None,
            mem_per_gpu_mb=settings.local_mem_per_gpu_mb,
            gpu_sample_interval_s=settings.gpu_sample_interval_s,
            gpu_idle_below_pct=settings.gpu_idle_below_pct,
        )
    if settings.executor == "slurm":
        # Imported by name: an installation may lack the Slurm backend's dependencies.
        try:
            make_slurm_backend = importlib.import_module(
                "rechenwerk.execution.slurm"
            ).make_slurm_backend
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                "the Slurm backend is not available in this installation",
                field="executor",
                hint='Set RECHENWERK_EXECUTOR=local or install the Slurm backend.',
            ) from exc
        backend: ExecutionBackend = make_slurm_backend(settings)
        return backend
    raise InvalidInput(
        f"unknown executor {settings.executor!r}",
        field="executor",
        hint='Use "local" or "slurm".',
    )
