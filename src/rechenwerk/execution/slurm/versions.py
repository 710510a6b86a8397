"""Which data format module speaks to this Slurm: by release for the CLI (``scontrol
version``: each release's commands print its newest data_parser), by what slurmrestd
offers for REST (the newest format both sides know)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from rechenwerk.errors import BackendError, InvalidInput
from rechenwerk.execution.slurm import v0_0_38, v0_0_39, v0_0_40, v0_0_41, v0_0_42

FORMATS: dict[str, ModuleType] = {
    m.VERSION: m for m in (v0_0_38, v0_0_39, v0_0_40, v0_0_41, v0_0_42)
}
# Slurm release (major, minor) -> the data_parser its squeue/sacct/sinfo --json print
RELEASES: dict[tuple[int, int], str] = {
    (22, 5): "v0.0.38",
    (23, 2): "v0.0.39",
    (23, 11): "v0.0.40",
    (24, 5): "v0.0.41",
    (24, 11): "v0.0.42",
}
# --json=<data_parser> on the commands exists from 23.11 on
_JSON_CHOICE_SINCE = (23, 11)
_VERSION_RE = re.compile(r"\b(\d+)\.(\d+)(?:\.(\d+))?")
_FORMAT_RE = re.compile(r"^v\d+\.\d+\.\d+$")
_API_PATH_RE = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/")
_JSON_LIST_RE = re.compile(r"^data_parser/(v\d+\.\d+\.\d+)\s*$", re.M)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


def supported_releases() -> str:
    return ", ".join(f"{a}.{b:02d} ({v})" for (a, b), v in RELEASES.items())


def format_by_name(version: str, *, field: str = "slurm_data_format") -> ModuleType:
    """An operator's explicit choice (``v0.0.41``)."""
    if version not in FORMATS:
        raise InvalidInput(
            f"Slurm data format {version!r} is not supported",
            field=field,
            hint=f"Supported: {', '.join(FORMATS)}; empty: detect it from Slurm.",
        )
    return FORMATS[version]


def parse_release(text: str) -> tuple[int, int]:
    """``"slurm 24.11.5"`` / ``"slurm-wlm 22.05.8"`` -> (24, 11)."""
    m = _VERSION_RE.search(text)
    if m is None:
        raise BackendError(
            f"cannot read a Slurm release from {text.strip()[:200]!r}",
            hint="`scontrol version` should print e.g. 'slurm 24.11.5'; or set "
            "RECHENWERK_SLURM_DATA_FORMAT.",
        )
    return int(m.group(1)), int(m.group(2))


def format_for_release(release: tuple[int, int]) -> ModuleType:
    version = RELEASES.get(release)
    if version is None:
        raise BackendError(
            f"Slurm {release[0]}.{release[1]:02d} is not supported by this Rechenwerk: "
            f"its commands print a JSON format Rechenwerk does not know",
            hint=f"Supported Slurm releases: {supported_releases()}. On 23.11 or later "
            "RECHENWERK_SLURM_DATA_FORMAT=<one of those formats> makes the commands print "
            "an older format (--json=<format>), if the release still has it.",
        )
    return FORMATS[version]


def can_choose_json(release: tuple[int, int]) -> bool:
    """Whether ``squeue --json=<data_parser>`` works on this release."""
    return release >= _JSON_CHOICE_SINCE


def offered_by_json_list(text: str) -> list[str]:
    """``squeue --json=list`` (23.11+) -> the formats the commands can print, oldest first:
    a release newer than Rechenwerk knows is spoken to in the newest of these it knows."""
    found = {m.group(1) for m in _JSON_LIST_RE.finditer(text)}
    return sorted(found, key=_key)


def offered_by_openapi(doc: Mapping[str, Any]) -> list[str]:
    """slurmrestd's ``GET /openapi/v3`` -> the ``/slurm/vX.Y.Z/`` formats it offers."""
    paths = doc.get("paths") or {}
    found = {m.group(1) for p in paths if (m := _API_PATH_RE.match(str(p)))}
    return sorted(found, key=_key)


def newest_common(offered: Iterable[str], *, where: str) -> ModuleType:
    offered = list(offered)
    common = [v for v in offered if v in FORMATS]
    if not common:
        raise BackendError(
            f"{where} offers the Slurm data formats {', '.join(offered) or 'none'}; "
            f"Rechenwerk supports {', '.join(FORMATS)}",
            hint=f"Supported Slurm releases: {supported_releases()}. Check slurmrestd's "
            "-d (data_parser) and -s (openapi plugin) options.",
        )
    return FORMATS[max(common, key=_key)]


def is_format_name(text: str) -> bool:
    return bool(_FORMAT_RE.match(text))
