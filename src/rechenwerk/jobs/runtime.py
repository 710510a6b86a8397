"""The server's execution backend and node inventory, shared by the REST API and the portal."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from rechenwerk.config import Settings, get_settings
from rechenwerk.execution.base import ExecutionBackend


def settings_for(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def backend_for(request: Request) -> ExecutionBackend:
    """The backend the scheduler loop started with, or one built (once) for queries."""
    backend: ExecutionBackend | None = getattr(request.app.state, "backend", None)
    if backend is None:
        from rechenwerk.execution.factory import make_backend

        backend = make_backend(settings_for(request))
        request.app.state.backend = backend
    return backend


def inventory(request: Request) -> list[Any]:
    """The backend's nodes (name, GPUs, GPU type, block); empty for backends without one."""
    fn = getattr(backend_for(request), "inventory", None)
    return list(fn()) if callable(fn) else []


def centre_gpus(request: Request) -> int:
    """Total GPUs of the centre's inventory (at least 1, so ratios stay defined)."""
    return sum(int(n.gpus) for n in inventory(request)) or 1
