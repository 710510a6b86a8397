"""Operator settings of the live scheduler, read once and validated with clear errors:
the policy's parameters (``RECHENWERK_SCHEDULER_PARAMS``) and the longest walltime per
QOS (``RECHENWERK_QOS_MAX_WALLTIME``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.jobs.specs import QOS_MAX_WALLTIME_S, parse_duration
from rechenwerk.scheduling.params import PolicyParams, params_from_mapping
from rechenwerk.scheduling.policies import Policy, make_policy

_PARAMS_HINT = ("Set RECHENWERK_SCHEDULER_PARAMS to a YAML file's path or an inline JSON "
                "object, e.g. '{\"weight_fairshare\": 20000}' (docs/scheduling.md).")


def load_params_file(path: Path) -> PolicyParams:
    """PolicyParams from a YAML (or JSON) file: the live scheduler's and the simulator's."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read scheduling parameters {path}: {exc.strerror}",
                           field="scheduler_params", hint=_PARAMS_HINT) from None
    return _params_from_text(text, source=str(path))


def _params_from_text(text: str, *, source: str) -> PolicyParams:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML or JSON: {exc}".splitlines()[0],
                           field="scheduler_params", hint=_PARAMS_HINT) from None
    if data is None:
        return PolicyParams()
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{source} must be a mapping of parameter: value",
                           field="scheduler_params", hint=_PARAMS_HINT)
    return params_from_mapping(data, source=source)


def configured_policy(settings: Settings) -> Policy:
    """The policy the operator configured (a bad expression or parameter fails with a
    clear error): the live loop's and the queue views'."""
    return make_policy(settings.scheduler_policy, scheduler_params(settings))


def scheduler_params(settings: Settings) -> PolicyParams:
    """The parameters ``settings.scheduler_params`` names (defaults when empty)."""
    return _cached_params(settings.scheduler_params.strip())


@lru_cache(maxsize=8)
def _cached_params(value: str) -> PolicyParams:
    if not value:
        return PolicyParams()
    if value.startswith("{"):
        return _params_from_text(value, source="RECHENWERK_SCHEDULER_PARAMS")
    return load_params_file(Path(value).expanduser())


def qos_limits(settings: Settings) -> dict[str, int]:
    """Longest walltime (seconds) per QOS: the defaults, overridden per QOS by
    ``settings.qos_max_walltime``."""
    return dict(_cached_limits(tuple(sorted(settings.qos_max_walltime.items()))))


@lru_cache(maxsize=8)
def _cached_limits(overrides: tuple[tuple[str, str], ...]) -> tuple[tuple[str, int], ...]:
    limits = dict(QOS_MAX_WALLTIME_S)
    for qos, value in overrides:
        if qos not in limits:
            raise InvalidInput(
                f"RECHENWERK_QOS_MAX_WALLTIME: unknown QOS {qos!r}",
                field="qos_max_walltime",
                hint="QOS names: " + ", ".join(QOS_MAX_WALLTIME_S) + ".")
        try:
            limits[qos] = parse_duration(value, field=f"qos_max_walltime.{qos}")
        except ValueError as exc:
            raise InvalidInput(
                f"RECHENWERK_QOS_MAX_WALLTIME: {qos}: {exc}", field="qos_max_walltime",
                hint='e.g. \'{"high": "12h", "low": "7d"}\'') from None
    return tuple(limits.items())


def describe(settings: Settings) -> str:
    """One line for the server's start-up log."""
    p = scheduler_params(settings)
    limits = ", ".join(f"{q} <= {s // 3600}h" for q, s in qos_limits(settings).items())
    return (f"policy {settings.scheduler_policy}; fair-share half-life "
            f"{p.fairshare_half_life_s / 86400:g} d; weights age {p.weight_age:g}, "
            f"fairshare {p.weight_fairshare:g}, size {p.weight_jobsize:g}, qos "
            f"{p.weight_qos:g}; walltime {limits}")


__all__ = ["describe", "load_params_file", "qos_limits", "scheduler_params"]
