"""container_image on Slurm: run through the operator's wrapper, or refused; never dropped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import LaunchRequest
from rechenwerk.execution.slurm.containers import check_image, parse_runtime, wrap
from rechenwerk.execution.slurm.script import build_submit_spec

APPTAINER = parse_runtime("apptainer exec --nv {image}")


def launch(tmp: Path, **change: object) -> LaunchRequest:
    base = LaunchRequest(
        job_id="7", attempt=1, name="t", project="proj", user="alice",
        command=("python", "train.py", "--lr", "3e-4"), script=None, workdir=str(tmp),
        env={}, gpus=1, nodes=1, gpus_per_node=1, walltime_s=600, qos="normal",
        log_dir=str(tmp / "logs"), container_image="docker://nvcr.io/nvidia/pytorch:24.05-py3")
    return replace(base, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(("template", "fragment"), [
    ("apptainer exec --nv", "contain {image} once"),
    ("run {image} {image}", "contain {image} once"),
    ("{image} run", "start with a command"),
    ("apptainer exec '{image}", "cannot be split"),
])
def test_unusable_runtime_settings_are_refused(template: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_runtime(template)


def test_no_runtime_means_no_containers() -> None:
    assert parse_runtime("  ") == ()
    with pytest.raises(InvalidInput, match="no container runtime configured") as err:
        wrap(["true"], "docker://x/y:1", ())
    assert "RECHENWERK_SLURM_CONTAINER_RUNTIME" in (err.value.hint or "")
    assert wrap(["true"], None, ()) == ["true"]


@pytest.mark.parametrize("image", ["--bind=/:/host", "a b", "$(id)", "x\ny", "", "a;b",
                                   "x" * 600])
def test_hostile_image_references_are_refused(image: str) -> None:
    with pytest.raises(InvalidInput, match="not an image reference"):
        check_image(image)


@pytest.mark.parametrize("image", ["docker://nvcr.io/nvidia/pytorch:24.05-py3",
                                   "/shared/images/torch.sif", "nvcr.io#nvidia/pytorch:24.05-py3",
                                   "ghcr.io/org/img@sha256:0123abcd"])
def test_image_references_people_use_pass(image: str) -> None:
    assert check_image(image) == image


def test_single_node_script_runs_the_program_in_the_image(tmp_path: Path) -> None:
    spec = build_submit_spec(launch(tmp_path), partition="debug", container_runtime=APPTAINER)
    assert ("exec apptainer exec --nv docker://nvcr.io/nvidia/pytorch:24.05-py3 "
            "python train.py --lr 3e-4") in spec.script


def test_multi_node_script_starts_the_image_on_every_node(tmp_path: Path) -> None:
    req = launch(tmp_path, nodes=2, gpus=4, gpus_per_node=2,
                 container_image="/shared/images/torch.sif")
    spec = build_submit_spec(req, partition="debug", container_runtime=APPTAINER)
    srun = next(line for line in spec.script.splitlines() if line.startswith("exec srun"))
    assert srun.endswith("rechenwerk-task apptainer exec --nv /shared/images/torch.sif "
                         "python train.py --lr 3e-4")


def test_without_runtime_the_backend_refuses_instead_of_dropping(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="container_image cannot be honoured"):
        build_submit_spec(launch(tmp_path), partition="debug")
    plain = build_submit_spec(launch(tmp_path, container_image=None), partition="debug")
    assert "exec python train.py --lr 3e-4" in plain.script
