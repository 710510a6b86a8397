"""Slurm backend: Slurm schedules, Rechenwerk sets limits/priorities, submits, tracks and
accounts. Transports: the CLI (``sbatch``/``squeue --json``/``sacct --json``) or
slurmrestd, chosen by ``settings.slurm_transport``; Slurm's JSON data formats v0.0.38 to
v0.0.42 are chosen per cluster in ``versions.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rechenwerk.execution.slurm.backend import SlurmBackend
from rechenwerk.execution.slurm.types import SlurmJob, SlurmTransport, SubmitSpec

if TYPE_CHECKING:
    from rechenwerk.config import Settings

__all__ = [
    "SlurmBackend",
    "SlurmJob",
    "SlurmTransport",
    "SubmitSpec",
    "make_slurm_backend",
    "make_transport",
]


def make_transport(settings: Settings) -> SlurmTransport:
    transport = _make_transport(settings)
    # a class default on both transports: idle GPU time as the operator defines it
    transport.gpu_idle_below_pct = settings.gpu_idle_below_pct  # type: ignore[attr-defined]
    return transport


def _make_transport(settings: Settings) -> SlurmTransport:
    if settings.slurm_transport == "rest":
        from rechenwerk.execution.slurm.rest_transport import RestTransport

        return RestTransport(
            settings.slurm_rest_url,
            token=settings.slurm_rest_token or None,
            api_version=settings.slurm_data_format or None,
            command_prefix=settings.slurm_command_prefix_argv,
        )
    from rechenwerk.execution.slurm.cli_transport import CliTransport

    return CliTransport(data_format=settings.slurm_data_format or None,
                        command_prefix=settings.slurm_command_prefix_argv)


def make_slurm_backend(settings: Settings) -> SlurmBackend:
    return SlurmBackend(
        make_transport(settings),
        partition=settings.slurm_partition,
        submit_as_user=settings.slurm_submit_as == "user",
        gpu_types=settings.slurm_gpu_types,
        container_runtime=settings.slurm_container_runtime,
    )
