"""GPU types the centre knows (awards, proposals and prices name one of these).

The planning hardware catalogue (``rechenwerk.planning.hardware``: built-in YAML plus the
operator's extension) is the source of truth; names are canonicalised through it, so
aliases such as ``H100`` become ``H100-SXM``. A small fallback list keeps access usable if
the catalogue cannot be imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from rechenwerk.errors import InvalidInput

FALLBACK_GPU_TYPES: tuple[str, ...] = (
    "A100-40GB",
    "A100-80GB",
    "H100-SXM",
    "H100-PCIe",
    "H200",
    "GH200",
    "B200",
    "L40S",
    "MI250X",
    "MI300X",
)


def _catalogue() -> Any | None:
    try:
        hardware = importlib.import_module("rechenwerk.planning.hardware")
    except ImportError:
        return None
    factory = getattr(hardware, "default_catalogue", None)
    return factory() if callable(factory) else None


def known_gpu_types() -> tuple[str, ...]:
    catalogue = _catalogue()
    if catalogue is None:
        return FALLBACK_GPU_TYPES
    return tuple(str(n) for n in catalogue.names)


def validate_gpu_type(value: str, *, field: str = "gpu_type") -> str:
    """The canonical name of GPU type ``value``; InvalidInput naming ``field`` if unknown."""
    catalogue = _catalogue()
    if catalogue is not None:
        return str(catalogue.get(value, field=field).name)
    lowered = {k.lower(): k for k in FALLBACK_GPU_TYPES}
    if value.strip().lower() in lowered:
        return lowered[value.strip().lower()]
    raise InvalidInput(
        f"unknown GPU type {value!r}",
        field=field,
        hint="Use one of: " + ", ".join(FALLBACK_GPU_TYPES) + ".",
    )
