"""Container images on Slurm: run through the wrapper the operator configured
(``RECHENWERK_SLURM_CONTAINER_RUNTIME``, e.g. ``apptainer exec --nv {image}``), never
silently dropped. Without a wrapper a job with an image is refused with a clear error."""

from __future__ import annotations

import re
import shlex

from rechenwerk.errors import InvalidInput

PLACEHOLDER = "{image}"
# Registry references (docker://nvcr.io/nvidia/pytorch:24.05-py3), image files
# (/shared/images/torch.sif) and enroot/pyxis names (nvcr.io#nvidia/pytorch:24.05-py3).
_IMAGE = re.compile(r"^[A-Za-z0-9/][A-Za-z0-9._:/@#+=-]{0,511}$")
_HOW = ("Set RECHENWERK_SLURM_CONTAINER_RUNTIME to the command that runs an image on this "
        "cluster, with {image} where the image goes, e.g. 'apptainer exec --nv {image}'.")


def parse_runtime(template: str) -> tuple[str, ...]:
    """The wrapper's argv (``{image}`` still in it); empty: the cluster runs no containers.
    InvalidInput when the setting cannot be used."""
    if not template.strip():
        return ()
    try:
        argv = tuple(shlex.split(template))
    except ValueError as exc:
        raise InvalidInput(f"RECHENWERK_SLURM_CONTAINER_RUNTIME cannot be split: {exc}",
                           field="slurm_container_runtime", hint=_HOW) from None
    if sum(a.count(PLACEHOLDER) for a in argv) != 1:
        raise InvalidInput("RECHENWERK_SLURM_CONTAINER_RUNTIME must contain {image} once",
                           field="slurm_container_runtime", hint=_HOW)
    if argv[0] == PLACEHOLDER:
        raise InvalidInput("RECHENWERK_SLURM_CONTAINER_RUNTIME must start with a command, "
                           "not {image}", field="slurm_container_runtime", hint=_HOW)
    return argv


def check_image(image: str) -> str:
    """A job's image reference: one word of the characters registries and paths use, so
    it can never be read as an option of the runtime or as more than one argument."""
    if not _IMAGE.fullmatch(image):
        raise InvalidInput(
            f"container_image {image[:80]!r} is not an image reference",
            field="container_image",
            hint="Give a registry reference (docker://nvcr.io/nvidia/pytorch:24.05-py3) or "
                 "an image file path (/shared/images/torch.sif): letters, digits and "
                 "._:/@#+=- only, not starting with '-'.")
    return image


def wrap(argv: list[str], image: str | None, runtime: tuple[str, ...]) -> list[str]:
    """``argv`` run inside ``image`` through ``runtime``; unchanged without an image."""
    if image is None:
        return argv
    if not runtime:
        raise InvalidInput("this Slurm cluster has no container runtime configured, so "
                           "container_image cannot be honoured",
                           field="container_image",
                           hint="Remove container_image, or ask the centre's operators: "
                                + _HOW)
    image = check_image(image)
    return [a.replace(PLACEHOLDER, image) for a in runtime] + argv
