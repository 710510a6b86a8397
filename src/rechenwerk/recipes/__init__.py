"""Training recipes that work out of the box: each is a directory of package data (a
training script, a job spec template ``job.yaml`` and a README) that
``rechenwerk recipe init NAME DIR`` copies and fills in, so that
``rechenwerk submit DIR/job.yaml`` runs it. See docs/recipes.md.

The recipes' scripts need PyTorch (``pip install 'rechenwerk[recipes]'``); this module
does not: it only lists, renders and copies files.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from rechenwerk.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from rechenwerk.planning.hardware import Catalogue, GPUSpec

TEMPLATE = "job.yaml"
# Files of a recipe directory that are not part of the recipe.
_SKIP = {"__pycache__", "__init__.py"}


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    directory: str  # the package-data directory under rechenwerk/recipes/
    summary: str
    script: str  # the training script in that directory
    gpus: int  # defaults of `init`
    walltime: str
    checkpoint_interval: str | None  # None: the recipe does not checkpoint


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("gpt-pretrain", "gpt_pretrain",
               "pre-train a small byte-level GPT with DDP; checkpoints, resumes after "
               "preemption, reports tokens/s and MFU",
               "train_gpt.py", gpus=2, walltime="30m", checkpoint_interval="5m"),
        Recipe("allreduce-check", "allreduce_check",
               "health and bandwidth check of an allocation: all-reduce bus bandwidth per "
               "message size, pass/fail",
               "allreduce_check.py", gpus=2, walltime="10m", checkpoint_interval=None),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise NotFound(
            f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}",
            field="recipe",
            hint="`rechenwerk recipe list` shows them with a summary.",
        ) from None


def _root(recipe: Recipe) -> Traversable:
    return resources.files("rechenwerk.recipes").joinpath(recipe.directory)


def recipe_files(recipe: Recipe) -> list[str]:
    """The file names of a recipe, sorted."""
    return sorted(f.name for f in _root(recipe).iterdir()
                  if f.is_file() and f.name not in _SKIP and not f.name.endswith(".pyc"))


def read_recipe_file(recipe: Recipe, filename: str) -> str:
    if filename not in recipe_files(recipe):
        raise NotFound(f"recipe {recipe.name} has no file {filename!r}",
                       hint="files: " + ", ".join(recipe_files(recipe)))
    return _root(recipe).joinpath(filename).read_text()


@dataclass(frozen=True, slots=True)
class JobShape:
    """What ``init`` fills into the template."""

    project: str
    gpus: int
    nodes: int
    walltime: str
    checkpoint_interval: str | None
    workdir: Path
    python: str

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes


def check_shape(recipe: Recipe, *, project: str, gpus: int, nodes: int, walltime: str,
                checkpoint_interval: str | None, workdir: Path, python: str) -> JobShape:
    """Validate the numbers with one clear message each (field named)."""
    from rechenwerk.jobs.specs import parse_duration

    if gpus < 1:
        raise InvalidInput(f"--gpus must be at least 1 (got {gpus})", field="gpus")
    if nodes < 1:
        raise InvalidInput(f"--nodes must be at least 1 (got {nodes})", field="nodes")
    if gpus % nodes:
        raise InvalidInput(
            f"--gpus {gpus} is not a multiple of --nodes {nodes}", field="gpus",
            hint="every node of a job gets the same number of GPUs, e.g. --gpus 16 --nodes 2",
        )
    if not project.strip() or any(c.isspace() for c in project):
        raise InvalidInput(f"--project {project!r} is not a project slug", field="project")
    if checkpoint_interval is not None and recipe.checkpoint_interval is None:
        raise InvalidInput(f"recipe {recipe.name} does not checkpoint; drop "
                           "--checkpoint-interval", field="checkpoint_interval")
    interval = checkpoint_interval or recipe.checkpoint_interval
    durations: dict[str, int] = {}
    for field, value in (("walltime", walltime), ("checkpoint_interval", interval)):
        if value is None:
            continue
        try:
            durations[field] = parse_duration(value, field=field)
        except ValueError as exc:
            flag = "--" + field.replace("_", "-")
            raise InvalidInput(f"{flag}: {exc}", field=field) from None
    if durations.get("checkpoint_interval", 0) > durations["walltime"]:
        raise InvalidInput(
            f"the checkpoint interval {interval} is longer than the walltime {walltime}",
            field="checkpoint_interval",
            hint="give a shorter --checkpoint-interval or a longer --walltime",
        )
    return JobShape(project=project, gpus=gpus, nodes=nodes, walltime=walltime,
                    checkpoint_interval=interval, workdir=workdir, python=python)


def render_job_spec(recipe: Recipe, shape: JobShape) -> str:
    """The recipe's ``job.yaml`` with every ``@FIELD@`` filled in. Strings are written as
    JSON (valid YAML), the interpreter shell-quoted; the result is checked as a job spec."""
    from rechenwerk.jobs.specs import load_spec_text

    values = {
        "PROJECT": json.dumps(shape.project),
        "GPUS": str(shape.gpus),
        "NODES": str(shape.nodes),
        "GPUS_PER_NODE": str(shape.gpus_per_node),
        "WALLTIME": json.dumps(shape.walltime),
        "CHECKPOINT_INTERVAL": json.dumps(shape.checkpoint_interval),
        "WORKDIR": json.dumps(str(shape.workdir)),
        "PYTHON": shlex.quote(shape.python),
    }
    text = read_recipe_file(recipe, TEMPLATE)
    text = re.sub(r"@([A-Z_]+)@", lambda m: values.get(m.group(1), m.group(0)), text)
    leftover = re.search(r"@[A-Z_]+@", text)
    if leftover:  # a template bug, not the user's: say which placeholder
        raise InvalidInput(f"recipe {recipe.name}: {TEMPLATE} has an unknown placeholder "
                           f"{leftover.group(0)}")
    load_spec_text(text, source=f"{recipe.name}/{TEMPLATE}")
    return text


@dataclass(frozen=True, slots=True)
class InitResult:
    recipe: Recipe
    directory: Path
    files: list[str]
    spec: Path
    torch_found: bool  # whether the chosen interpreter is ours and has torch


def init_recipe(name: str, dest: Path, *, project: str, gpus: int | None = None,
                nodes: int = 1, walltime: str | None = None,
                checkpoint_interval: str | None = None,
                python: str | None = None) -> InitResult:
    """Copy recipe ``name`` into ``dest`` (new or empty) with a filled ``job.yaml``."""
    recipe = get_recipe(name)
    dest = dest.expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise Conflict(f"{dest} exists and is not a directory", field="dir")
    if dest.is_dir() and any(dest.iterdir()):
        raise Conflict(f"directory {dest} is not empty",
                       field="dir", hint="give a new or empty directory")
    interpreter = python or sys.executable
    shape = check_shape(recipe, project=project, gpus=recipe.gpus if gpus is None else gpus,
                        nodes=nodes, walltime=walltime or recipe.walltime,
                        checkpoint_interval=checkpoint_interval, workdir=dest,
                        python=interpreter)
    spec_text = render_job_spec(recipe, shape)  # before writing anything
    try:
        dest.mkdir(parents=True, exist_ok=True)
        files = recipe_files(recipe)
        for filename in files:
            text = spec_text if filename == TEMPLATE else read_recipe_file(recipe, filename)
            (dest / filename).write_text(text)
            if filename == recipe.script:
                (dest / filename).chmod(0o755)
    except OSError as exc:
        raise InvalidInput(f"cannot write to {dest}: {exc.strerror}", field="dir") from None
    torch_found = False
    if Path(interpreter).resolve() == Path(sys.executable).resolve():
        import importlib.util

        torch_found = importlib.util.find_spec("torch") is not None
    return InitResult(recipe, dest, files, dest / TEMPLATE, torch_found)


# --- hardware: the MFU denominator of the training scripts --------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "-", name.upper()).strip("-")


def match_gpu(device_name: str, catalogue: Catalogue) -> GPUSpec | None:
    """The catalogue entry for a device name as the driver reports it
    (``NVIDIA A100-SXM4-80GB``, ``NVIDIA H100 PCIe``): the longest catalogue name or
    alias that occurs in it as a whole ``-``-separated part."""
    norm = f"-{_norm(device_name)}-"
    best: tuple[int, GPUSpec] | None = None
    for spec in catalogue.gpus.values():
        for alias in (spec.name, *spec.aliases):
            key = _norm(alias)
            if key and f"-{key}-" in norm and (best is None or len(key) > best[0]):
                best = (len(key), spec)
    return best[1] if best else None


def catalogue_peak_flops(device_or_type: str) -> tuple[str, float] | None:
    """(catalogue name, dense BF16 peak in FLOP/s) of a device name or GPU type, from the
    built-in hardware catalogue; None when it is not there. Built-in because this runs
    inside a job, which never sees the server's RECHENWERK_* settings."""
    from rechenwerk.planning.hardware import load_catalogue

    spec = match_gpu(device_or_type, load_catalogue())
    return (spec.name, spec.peak_bf16_flops) if spec else None
