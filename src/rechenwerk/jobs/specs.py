"""Job specifications: what a user submits (YAML or JSON), validated with clear errors.

Example (``examples/train-demo.yaml``)::

    name: train-demo
    project: demo-llm
    command: ["python3", "train_demo.py", "--steps", "20"]
    workdir: .
    gpus: 2
    walltime: 10m
    qos: normal
    idempotency_key: demo-1

Walltime and checkpoint interval accept seconds (``3600``), units (``"90m"``, ``"2h"``,
``"1d"``, ``"1h30m"``) and Slurm's forms (``"MM:SS"``, ``"HH:MM:SS"``, ``"D-HH:MM:SS"``).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rechenwerk.errors import (
    FIRST_ISSUE,
    InvalidInput,
    invalid_input,
    issues_from_validation,
    raise_collected,
)
from rechenwerk.scheduling.arrays import ArrayExpression, parse_array

QOS = Literal["normal", "high", "low"]
QOS_NAMES: tuple[str, ...] = ("high", "normal", "low")

# Longest walltime each QOS admits (seconds). "high" buys priority with short jobs;
# "low" is the scavenger QOS: preemptible, long.
QOS_MAX_WALLTIME_S: dict[str, int] = {
    "high": 24 * 3600,
    "normal": 48 * 3600,
    "low": 72 * 3600,
}

# Bounds of a spec (docs/security.md, "Limits"): far above any real job, and within the
# database's 32-bit integer columns.
MAX_SCRIPT_BYTES = 256 * 1024
MAX_GPUS = 100_000
MAX_DURATION_S = 10 * 365 * 86400  # 10 years; the QOS limits are far lower
# Jobs one job may wait for (all kinds together): a pipeline step names a few; a bound
# keeps the submission's look-up and the loop's dependency phase small.
MAX_DEPENDENCIES = 100
MAX_JOB_ID = 2**63 - 1  # the database's 64-bit ids
# Tasks of one job array the spec admits at all; the operator's (lower) limit is the
# setting ``max_array_tasks``, checked at submission.
MAX_ARRAY_TASKS = 100_000

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNITS_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_UNIT_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SLURM_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_duration(value: Any, *, field: str = "walltime") -> int:
    """Seconds from ``3600``, ``"90m"``, ``"1h30m"``, ``"2:00:00"``, ``"1-00:00:00"``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 3600, '90m', '2h' or '1-00:00:00'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if not text:
            raise ValueError("is empty; give a duration such as '2h'")
        if text.isdigit():
            seconds = float(text)
        elif _UNITS_RE.match(text):
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _UNIT_PART_RE.findall(text))
        elif m := _SLURM_RE.match(text):
            days, a, b, c = m.groups()
            parts = [int(x) for x in (a, b, c) if x is not None]
            if days is not None:
                # D-HH, D-HH:MM, D-HH:MM:SS
                hh, mm, ss = ([*parts, 0, 0])[:3]
                seconds = int(days) * 86400 + hh * 3600 + mm * 60 + ss
            elif len(parts) == 3:
                seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
            elif len(parts) == 2:
                seconds = parts[0] * 60 + parts[1]
            else:
                seconds = parts[0]
        else:
            raise ValueError(
                f"{value!r} is not a duration; use seconds (3600), units ('90m', '2h', "
                "'1d') or D-HH:MM:SS ('1-00:00:00')"
            )
    else:
        raise ValueError("must be a duration such as 3600, '90m', '2h' or '1-00:00:00'")
    if not math.isfinite(seconds):
        raise ValueError("must be a finite duration such as 3600 or '2h'")
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"must be at most {MAX_DURATION_S} seconds (10 years)")
    return round(seconds)


def format_duration(seconds: float) -> str:
    s = round(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:{sec:02d}" if d else f"{h:02d}:{m:02d}:{sec:02d}"


class DependsOn(BaseModel):
    """``depends_on``: the jobs this one waits for, as Slurm's ``--dependency`` types
    (``afterok``, ``afterany``, ``afternotok``). Ids are Rechenwerk job ids."""

    model_config = ConfigDict(extra="forbid")

    after_ok: list[int] = Field(default_factory=list)
    after_any: list[int] = Field(default_factory=list)
    after_not_ok: list[int] = Field(default_factory=list)

    @field_validator("after_ok", "after_any", "after_not_ok", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        if isinstance(v, int | str) and not isinstance(v, bool):
            v = [v]  # one id alone, as `after_ok: 12`
        if not isinstance(v, list):
            raise ValueError("must be a list of job ids, e.g. [12, 13]")
        out: list[int] = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ValueError(f"{item!r} is not a job id (a whole number)")
            text = str(item).strip()
            if not text.isdecimal() or not 1 <= int(text) <= MAX_JOB_ID:
                raise ValueError(f"{item!r} is not a job id (a whole number >= 1)")
            if int(text) not in out:
                out.append(int(text))
        return out

    @model_validator(mode="after")
    def _bounded(self) -> DependsOn:
        total = len(self.after_ok) + len(self.after_any) + len(self.after_not_ok)
        if total == 0:
            raise ValueError("names no job: give after_ok, after_any or after_not_ok")
        if total > MAX_DEPENDENCIES:
            raise ValueError(f"names {total} jobs; a job may depend on at most "
                             f"{MAX_DEPENDENCIES}")
        return self

    def items(self) -> list[tuple[str, int]]:
        """(kind, job id) pairs, in the order written."""
        return [*(("after_ok", j) for j in self.after_ok),
                *(("after_any", j) for j in self.after_any),
                *(("after_not_ok", j) for j in self.after_not_ok)]


class JobSpec(BaseModel):
    """A validated job specification. ``command`` is always an argv list after parsing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    project: str = Field(min_length=1, max_length=128)
    command: list[str] | None = None
    script: str | None = None
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    container_image: str | None = None
    gpus: int = Field(le=MAX_GPUS)
    nodes: int | None = Field(default=None, le=MAX_GPUS)
    gpus_per_node: int | None = Field(default=None, le=MAX_GPUS)
    gpu_type: str | None = None
    # the cluster to run on (RECHENWERK_CLUSTERS); None: the centre routes the job
    cluster: str | None = Field(default=None, min_length=1, max_length=32,
                                pattern=r"^[a-z][a-z0-9-]*$")
    walltime_s: int = Field(alias="walltime")
    qos: QOS = "normal"
    checkpoint_interval_s: int | None = Field(default=None, alias="checkpoint_interval")
    # runs only inside this advance reservation of its project (Slurm --reservation)
    reservation: str | None = Field(default=None, min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    depends_on: DependsOn | None = None
    # A job array (Slurm's --array): "0-99", "0-99:2", "1,3,5-7", "0-99%10" (canonical
    # form after parsing); each index becomes one task (scheduling/arrays.py).
    array: str | None = None

    @field_validator("array", mode="before")
    @classmethod
    def _array(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            raise ValueError("must be an index expression such as '0-99', '1,3,5-7' or "
                             "'0-99%10'")
        return parse_array(v, max_tasks=MAX_ARRAY_TASKS).text()

    def array_expression(self, max_tasks: int = MAX_ARRAY_TASKS) -> ArrayExpression | None:
        """The parsed array (None: a single job); ValueError above ``max_tasks``."""
        return None if self.array is None else parse_array(self.array, max_tasks=max_tasks)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                parts = shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"cannot be split into arguments: {exc}") from None
            return parts
        return v

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0]):
            raise ValueError("must name a program to run, e.g. ['python3', 'train.py']")
        return v

    @field_validator("walltime_s", mode="before")
    @classmethod
    def _walltime(cls, v: Any) -> int:
        return parse_duration(v)

    @field_validator("checkpoint_interval_s", mode="before")
    @classmethod
    def _ckpt(cls, v: Any) -> int | None:
        return None if v is None else parse_duration(v, field="checkpoint_interval")

    @field_validator("gpus", "nodes", "gpus_per_node", mode="before")
    @classmethod
    def _not_boolean(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"must be a whole number, not {str(v).lower()}")
        return v

    @field_validator("script")
    @classmethod
    def _script_size(cls, v: str | None) -> str | None:
        if v is not None and len(v.encode("utf-8")) > MAX_SCRIPT_BYTES:
            raise ValueError(
                f"is {len(v.encode('utf-8'))} bytes; a script has at most {MAX_SCRIPT_BYTES} "
                f"bytes ({MAX_SCRIPT_BYTES // 1024} KiB): put larger code in files in the "
                "workdir and run them from a short script")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus_positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be at least 1 (got {v})")
        return v

    @field_validator("nodes", "gpus_per_node")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be at least 1 (got {v})")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.startswith("RECHENWERK_") or key == "CUDA_VISIBLE_DEVICES":
                raise ValueError(f"{key} is set by Rechenwerk and cannot be overridden")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if (self.command is None) == (self.script is None):
            raise ValueError("give exactly one of 'command' or 'script'")
        if self.nodes is not None and self.gpus % self.nodes:
            raise ValueError(
                f"gpus ({self.gpus}) must be a multiple of nodes ({self.nodes})"
            )
        if self.gpus_per_node is not None and self.gpus % self.gpus_per_node:
            raise ValueError(
                f"gpus ({self.gpus}) must be a multiple of gpus_per_node ({self.gpus_per_node})"
            )
        if (
            self.nodes is not None
            and self.gpus_per_node is not None
            and self.nodes * self.gpus_per_node != self.gpus
        ):
            raise ValueError(
                f"nodes x gpus_per_node ({self.nodes} x {self.gpus_per_node}) must equal "
                f"gpus ({self.gpus})"
            )
        if self.checkpoint_interval_s is not None and self.checkpoint_interval_s > self.walltime_s:
            raise ValueError("checkpoint_interval must not exceed the walltime")
        return self

    @property
    def gpu_hours_requested(self) -> float:
        """What the job commits against the budget: GPUs x walltime."""
        return self.gpus * self.walltime_s / 3600.0

    def to_document(self) -> dict[str, Any]:
        """The spec as stored with the job (aliases as a user writes them)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: Any, *, source: str = "job spec") -> JobSpec:
    """Validate a decoded document; every problem is reported with its field path."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{source} must be a mapping of fields (name, project, command, gpus, walltime ...)",
            hint="See docs/jobs.md for the job spec format.",
        )
    try:
        return JobSpec.model_validate(dict(data))
    except ValidationError as exc:
        issues = issues_from_validation(exc, describe=_describe, root=_WHOLE_SPEC)
        raise invalid_input(
            issues, prefix=f"{source}: ", count_more=True,
            field=FIRST_ISSUE if issues[0].loc != _WHOLE_SPEC else None,
            hint="Fix the listed fields; see docs/jobs.md for the job spec format.",
        ) from None


_WHOLE_SPEC = ("(spec)",)  # where an error about the spec as a whole is reported


def _describe(err: Mapping[str, Any]) -> str:
    """pydantic's message for one field, in the words of docs/jobs.md."""
    if err.get("type") == "missing":
        return "is required"
    if err.get("type") == "extra_forbidden":
        return "is not a known field (see docs/jobs.md)"
    if err.get("type") == "string_pattern_mismatch" and tuple(err.get("loc", ())) == ("name",):
        return (f"{err.get('input')!r} is not a valid job name: use letters, digits, '.', "
                "'_', '+' or '-', starting with a letter or digit (no spaces)")
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def load_spec_text(text: str, *, source: str = "job spec") -> JobSpec:
    """Parse YAML or JSON text (JSON is YAML, but JSON errors read better from json)."""
    from rechenwerk.jobs.spec_text import decode_spec_text

    data = decode_spec_text(text, source=source)
    return parse_spec(data, source=source)


def check_against_centre(
    spec: JobSpec,
    *,
    total_gpus: int,
    max_gpus_per_node: int,
    node_count: int,
    qos_limits: Mapping[str, int] = QOS_MAX_WALLTIME_S,
) -> None:
    """Refuse what this centre can never run: more GPUs than it has, a walltime above the
    QOS limit, a per-node request larger than any node. Every one found is reported at
    once (one alone keeps its own message and hint)."""
    found: list[InvalidInput] = []
    if spec.gpus > total_gpus:
        found.append(InvalidInput(
            f"the job asks for {spec.gpus} GPUs but the centre has only {total_gpus}",
            field="gpus",
            hint=f"Ask for at most {total_gpus} GPUs.",
        ))
    per_node = spec.gpus_per_node or (spec.gpus // spec.nodes if spec.nodes else None)
    if per_node is not None and per_node > max_gpus_per_node:
        found.append(InvalidInput(
            f"the job asks for {per_node} GPUs per node but the largest node has "
            f"{max_gpus_per_node}",
            field="gpus_per_node",
            hint=f"Use at most {max_gpus_per_node} GPUs per node and more nodes.",
        ))
    if spec.nodes is not None and spec.nodes > node_count:
        found.append(InvalidInput(
            f"the job asks for {spec.nodes} nodes but the centre has {node_count}",
            field="nodes",
            hint=f"Ask for at most {node_count} nodes.",
        ))
    walltime = walltime_error(spec.walltime_s, spec.qos, qos_limits)
    if walltime is not None:
        found.append(walltime)
    raise_collected(found)


def check_walltime(spec: JobSpec, qos_limits: Mapping[str, int] = QOS_MAX_WALLTIME_S) -> None:
    """Refuse a walltime above the job's QOS limit (on every backend)."""
    err = walltime_error(spec.walltime_s, spec.qos, qos_limits)
    if err is not None:
        raise err


def walltime_error(walltime_s: int, qos: str,
                   qos_limits: Mapping[str, int] = QOS_MAX_WALLTIME_S) -> InvalidInput | None:
    """Why ``walltime_s`` is too long for QOS ``qos`` (None: it fits, or the QOS is not
    one of ``qos_limits``, which the spec's own check reports)."""
    limit = qos_limits.get(qos)
    if limit is None or walltime_s <= limit:
        return None
    return InvalidInput(
        f"walltime {format_duration(walltime_s)} is above the limit of QOS "
        f"{qos!r} ({format_duration(limit)})",
        field="walltime",
        hint="Shorten the walltime (checkpoint and resubmit) or choose another QOS: "
        + ", ".join(f"{q} <= {format_duration(s)}" for q, s in qos_limits.items()),
    )
