"""Build the execution backend the settings ask for."""

from __future__ import annotations

import importlib

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import ExecutionBackend


def make_backend(settings: Settings) -> ExecutionBackend:
    """``settings.executor``: "local" (processes over an emulated GPU inventory) or "slurm"."""
    if settings.executor == "local":
        from rechenwerk.execution.local import LocalExecutor

        return LocalExecutor(
            settings.data_dir,
            cluster=settings.local_cluster,
            kill_grace_s=settings.kill_grace_s,
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
