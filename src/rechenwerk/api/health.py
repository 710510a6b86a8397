"""Liveness and readiness for load balancers, orchestrators and operators.

``/healthz``: the process answers (no dependency is touched). ``/readyz``: the server can
do its work: the database answers and its schema is at the migrations' head, the
execution backend answers, and the scheduler loop goes round (or stands by by design:
disabled in this process, or another process leads). 200 when all hold, else 503; the
body names every check with its reason either way. Both are public and carry no user
data."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from rechenwerk import __version__
from rechenwerk.api.deps import runtime_of
from rechenwerk.execution.base import Pingable

if TYPE_CHECKING:
    from rechenwerk.app import Runtime

router = APIRouter(tags=["meta"])

# The loop must have gone round within this many scheduler intervals (at least
# HEARTBEAT_MIN_S: a long cycle on a big queue is not a fault).
HEARTBEAT_INTERVALS = 10
HEARTBEAT_MIN_S = 60.0


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Database, schema, backend and scheduler are ready",
            responses={503: {"description": "Not ready: the body says which check failed"}})
def readyz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    checks = {"database": _database(runtime), "backend": _backend(runtime),
              "scheduler": _scheduler(runtime)}
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ready" if ready else "unready", "version": __version__,
                         "checks": checks}, status_code=200 if ready else 503)


def _fail(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@lru_cache(maxsize=1)
def _migration_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from rechenwerk.store.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _database(runtime: Runtime) -> dict[str, Any]:
    from alembic.runtime.migration import MigrationContext

    engine = runtime.session_factory.kw["bind"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any driver error means: not reachable now
        return {"ok": False, "detail": f"unreachable: {_fail(exc)}"}
    heads = _migration_heads()
    if current != heads:
        return {"ok": False,
                "detail": f"schema at {sorted(current) or 'no revision'}, migrations at "
                          f"{sorted(heads)}: run `rechenwerk admin db upgrade`"}
    return {"ok": True, "detail": f"reachable, schema at {sorted(heads)[0]}"}


def _backend(runtime: Runtime) -> dict[str, Any]:
    if runtime.clusters.several:
        return _clusters(runtime)
    try:
        backend = runtime.backend
        if not isinstance(backend, Pingable):
            # named by the backend itself, not by app.py's wrapper that counts its errors
            name = type(getattr(backend, "inner", backend)).__name__
            return {"ok": True, "detail": f"{name} has no check"}
        backend.ping()
    except Exception as exc:
        return {"ok": False, "detail": f"unreachable: {_fail(exc)}"}
    return {"ok": True, "detail": f"{runtime.settings.executor} answers"}


def _clusters(runtime: Runtime) -> dict[str, Any]:
    """Several clusters: ready while one answers; each one's state in the detail."""
    registry = runtime.clusters
    parts = []
    for name in registry.names:
        try:
            backend = registry.backend(name)
            if isinstance(backend, Pingable):
                backend.ping()
            registry.mark_available(name, runtime.clock.now())
            parts.append(f"{name}: answers")
        except Exception as exc:
            registry.mark_unavailable(name, _fail(exc), runtime.clock.now())
            parts.append(f"{name}: unreachable: {_fail(exc)}")
    ok = any(s.available for s in registry.statuses())
    return {"ok": ok, "detail": "; ".join(parts)}


def _scheduler(runtime: Runtime) -> dict[str, Any]:
    if not runtime.settings.scheduler_enabled:
        return {"ok": True, "detail": "disabled in this process (RECHENWERK_SCHEDULER_ENABLED)"}
    loop = runtime.scheduler
    if loop is None or not loop.running:
        return {"ok": False, "detail": "the scheduler loop is not running"}
    limit = max(HEARTBEAT_MIN_S, HEARTBEAT_INTERVALS * runtime.settings.scheduler_interval_s)
    age = time.monotonic() - (loop.heartbeat_at or 0.0)
    if age > limit:
        return {"ok": False, "detail": f"no cycle for {age:.0f} s (limit {limit:.0f} s)"}
    if loop.last_error:
        return {"ok": False, "detail": f"last cycle failed: {loop.last_error}"}
    if not loop.leading:
        return {"ok": True, "detail": "standby: another process leads the scheduler"}
    return {"ok": True, "detail": f"leading, last cycle {age:.1f} s ago"}
