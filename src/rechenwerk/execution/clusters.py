"""Several clusters behind one centre (docs/slurm.md, "Several clusters behind one
centre").

An operator declares the centre's clusters in a YAML file named by
``RECHENWERK_CLUSTERS``: each has a name (a slug shown in ``queue``, ``jobs``, the
portal and the usage records), an executor, the Slurm connection keys (the flat
``slurm_*`` settings without their prefix), the GPU types it offers and its partitions.
Without the file there is one implicit cluster made of the flat settings, named
``cluster_name`` (default: the executor's name), so a deployment with one cluster, and
the embedded default with the local executor, work as before.

The :class:`ClusterRegistry` holds one backend per cluster and whether the cluster can
be reached: the scheduler loop marks a cluster unavailable with the reason when it does
not answer, goes on with the others, and marks it available again when it answers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput, issues_from_validation
from rechenwerk.execution.base import ExecutionBackend

log = logging.getLogger("rechenwerk.execution")

CLUSTER_NAME = r"^[a-z][a-z0-9-]{0,31}$"
NAME_RULE = "1-32 lower-case letters, digits or '-', starting with a letter"
MAX_CLUSTERS = 32
MAX_FILE_BYTES = 1 << 20


class ClusterSpec(BaseModel):
    """One declared cluster. The Slurm keys are the flat ``slurm_*`` settings without
    the prefix; a key left out takes the flat setting's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    executor: Literal["local", "slurm"] = "slurm"
    # The GPU types the cluster offers: a list, or a mapping GPU type -> Slurm GRES type
    # (as slurm_gpu_types). Empty: any GPU type (jobs without a type, every award).
    gpu_types: list[str] | dict[str, str] = Field(default_factory=list)
    # The partitions jobs may go to; the first is the default unless ``partition`` is set.
    partitions: list[str] = Field(default_factory=list)
    transport: Literal["cli", "rest"] | None = None
    rest_url: str | None = None
    partition: str | None = None
    submit_as: Literal["user", "service"] | None = None
    rest_token: str | None = None
    data_format: str | None = Field(default=None, pattern=r"^(v\d+\.\d+\.\d+)?$")
    container_runtime: str | None = Field(default=None, max_length=1000)
    command_prefix: str | None = Field(default=None, max_length=1000)
    local_cluster: str | None = None  # the local executor's inventory

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(CLUSTER_NAME, value):
            raise ValueError(f"cluster name {value!r}: {NAME_RULE}")
        return value

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: list[str]) -> list[str]:
        for p in value:
            if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", p):
                raise ValueError(f"partition {p!r} is not a Slurm partition name")
        return value

    @property
    def offered_gpu_types(self) -> frozenset[str] | None:
        """The GPU types offered; None: any."""
        types = list(self.gpu_types)
        return frozenset(types) if types else None

    def offers(self, gpu_type: str | None) -> bool:
        offered = self.offered_gpu_types
        return gpu_type is None or offered is None or gpu_type in offered

    def settings(self, base: Settings) -> Settings:
        """The flat settings with this cluster's keys in place (for make_backend)."""
        update: dict[str, Any] = {"executor": self.executor}
        for key in ("transport", "rest_url", "submit_as", "rest_token", "data_format",
                    "container_runtime", "command_prefix"):
            value = getattr(self, key)
            if value is not None:
                update[f"slurm_{key}"] = value.strip() if key == "command_prefix" else value
        partition = self.partition or (self.partitions[0] if self.partitions else None)
        if partition is not None:
            update["slurm_partition"] = partition
        if isinstance(self.gpu_types, dict):
            update["slurm_gpu_types"] = dict(self.gpu_types)
        if self.local_cluster is not None:
            update["local_cluster"] = self.local_cluster
        return base.model_copy(update=update)


def implicit_cluster(settings: Settings) -> ClusterSpec:
    """The one cluster of a deployment without RECHENWERK_CLUSTERS: the flat settings."""
    # offers any GPU type: the flat settings decide as before (one cluster, no routing)
    return ClusterSpec(name=settings.cluster_name or settings.executor,
                       executor=settings.executor)


def load_clusters(settings: Settings) -> tuple[ClusterSpec, ...]:
    """The declared clusters (RECHENWERK_CLUSTERS), or the one implicit cluster."""
    if not settings.clusters:
        return (implicit_cluster(settings),)
    return parse_clusters_file(Path(settings.clusters))


def declared_clusters(settings: Settings) -> tuple[ClusterSpec, ...]:
    """load_clusters, with the file read again only when it changed (per submission)."""
    if not settings.clusters:
        return (implicit_cluster(settings),)
    path = Path(settings.clusters)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1
    return _cached_file(str(path), mtime)


@lru_cache(maxsize=8)
def _cached_file(path: str, _mtime: int) -> tuple[ClusterSpec, ...]:
    return parse_clusters_file(Path(path))


def parse_clusters_file(path: Path) -> tuple[ClusterSpec, ...]:
    """Read and check a clusters file; InvalidInput names the file, entry and key."""
    import yaml

    how = ("Fix the file (docs/slurm.md, \"Several clusters behind one centre\") or unset "
           "RECHENWERK_CLUSTERS.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"RECHENWERK_CLUSTERS: {path} does not exist", field="clusters",
                           hint="Give the path of the YAML file declaring the clusters.",
                           ) from None
    except OSError as exc:
        raise InvalidInput(f"RECHENWERK_CLUSTERS: cannot read {path}: {exc.strerror or exc}",
                           field="clusters") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: larger than 1 MiB", field="clusters", hint=how)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"{path}: not a YAML file: {first}", field="clusters",
                           hint=how) from None
    if isinstance(data, dict) and set(data) == {"clusters"}:
        data = data["clusters"]
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{path}: must be a list of clusters (or 'clusters:' with one)",
                           field="clusters",
                           hint="e.g. '- name: gpu1\\n  executor: slurm'.")
    if len(data) > MAX_CLUSTERS:
        raise InvalidInput(f"{path}: {len(data)} clusters; at most {MAX_CLUSTERS}",
                           field="clusters", hint=how)
    specs: list[ClusterSpec] = []
    for i, entry in enumerate(data):
        label = (f"cluster {entry.get('name')!r} (entry {i + 1})"
                 if isinstance(entry, dict) and isinstance(entry.get("name"), str)
                 else f"entry {i + 1}")
        if not isinstance(entry, dict):
            raise InvalidInput(f"{path}: {label}: must be a mapping of keys", field="clusters",
                               hint=how)
        try:
            specs.append(ClusterSpec.model_validate(entry))
        except ValidationError as exc:
            issue = issues_from_validation(exc)[0]
            key = ".".join(str(p) for p in issue.loc) or "?"
            message = issue.message.removeprefix("Value error, ")
            raise InvalidInput(f"{path}: {label}: {key}: {message}", field="clusters",
                               hint=how) from None
    names = [s.name for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InvalidInput(f"{path}: cluster name {dup!r} is declared twice",
                           field="clusters", hint="Give every cluster a name of its own.")
    if len(specs) > 1 and any(s.executor == "local" for s in specs):
        local = next(s.name for s in specs if s.executor == "local")
        raise InvalidInput(
            f"{path}: cluster {local!r}: the local executor can only be the centre's one "
            "cluster; several clusters must all be Slurm clusters", field="clusters",
            hint="Declare only Slurm clusters, or only the local one.")
    return tuple(specs)


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """Whether a cluster can be reached (``rechenwerk clusters``, /readyz)."""

    name: str
    executor: str
    available: bool
    reason: str | None  # why not (the backend's error)
    since: datetime | None  # when it last changed; None: never checked


class ClusterRegistry:
    """The centre's clusters, one backend each (built on first use), with their
    availability. Thread-safe: the loop writes it, request handlers read it."""

    def __init__(self, specs: Sequence[ClusterSpec], *,
                 make: Callable[[ClusterSpec], ExecutionBackend],
                 backends: Mapping[str, ExecutionBackend] | None = None) -> None:
        if not specs:
            raise ValueError("a centre has at least one cluster")
        self.specs: dict[str, ClusterSpec] = {s.name: s for s in specs}
        self._make = make
        self._backends: dict[str, ExecutionBackend] = dict(backends or {})
        self._status: dict[str, ClusterStatus] = {
            s.name: ClusterStatus(s.name, s.executor, True, None, None) for s in specs}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      backends: Mapping[str, ExecutionBackend] | None = None,
                      ) -> ClusterRegistry:
        from rechenwerk.execution.factory import make_backend

        return cls(load_clusters(settings), make=lambda s: make_backend(s.settings(settings)),
                   backends=backends)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    @property
    def default(self) -> str:
        """The first declared cluster: jobs placed before clusters were declared."""
        return next(iter(self.specs))

    @property
    def several(self) -> bool:
        return len(self.specs) > 1

    def spec(self, name: str) -> ClusterSpec:
        return self.specs[name]

    def check_name(self, name: str) -> str:
        """``name`` if declared; else InvalidInput listing the clusters."""
        if name not in self.specs:
            raise InvalidInput(f"unknown cluster {name!r}", field="cluster",
                               hint=f"Use one of: {', '.join(self.names)}.")
        return name

    def backend(self, name: str | None = None) -> ExecutionBackend:
        name = name or self.default
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._backends[name] = self._make(self.specs[name])
            return backend

    def built(self) -> dict[str, ExecutionBackend]:
        with self._lock:
            return dict(self._backends)

    def status(self, name: str) -> ClusterStatus:
        with self._lock:
            return self._status[name]

    def statuses(self) -> list[ClusterStatus]:
        with self._lock:
            return [self._status[n] for n in self.specs]

    def available(self, name: str) -> bool:
        return self.status(name).available

    def mark_unavailable(self, name: str, reason: str, now: datetime) -> bool:
        """True when this changed it (the loop logs the change once)."""
        with self._lock:
            old = self._status[name]
            if not old.available and old.reason == reason:
                return False
            since = old.since if not old.available and old.since else now
            self._status[name] = ClusterStatus(name, old.executor, False, reason, since)
        if old.available:
            log.warning("cluster %s is unavailable: %s", name, reason)
        return old.available

    def mark_available(self, name: str, now: datetime) -> bool:
        with self._lock:
            old = self._status[name]
            if old.available and old.since is not None:
                return False
            self._status[name] = ClusterStatus(name, old.executor, True, None, now)
        if not old.available:
            log.warning("cluster %s is available again", name)
        return not old.available

    def close(self) -> None:
        for backend in self.built().values():
            backend.close()
