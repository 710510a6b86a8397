"""Value shapes of Slurm's data_parser formats v0.0.39+ (Slurm 23.02 and later), shared by
the version modules; which field has which shape is each version module's business.

- ``*_NO_VAL`` numbers are ``{"set": bool, "infinite": bool, "number": n}``; with the
  ``+complex`` parser flag they are a plain number, ``"Infinity"`` or ``null``.
- Flag fields (job and node states, exit code status) are lists of names.
- v0.0.40+ exit codes are ``{"status": [...], "return_code": N, "signal": {"id": N,
  "name": "KILL"}}`` with N a ``*_NO_VAL`` number.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def number(value: Any) -> int | None:
    """A plain or ``*_NO_VAL`` number -> int; unset or infinite -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, Mapping):
        if value.get("infinite") or not value.get("set", "number" in value):
            return None
        return number(value.get("number"))
    return None


def is_infinite(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value.get("infinite"))
    return bool(value == "Infinity")


def timestamp(value: Any) -> datetime | None:
    """A UNIX timestamp (plain or ``*_NO_VAL``); 0, unset and infinite -> None."""
    secs = number(value)
    if secs is None or secs <= 0:
        return None
    return datetime.fromtimestamp(secs, tz=UTC)


def no_val(value: int) -> dict[str, Any]:
    """A number as a request field of a ``*_NO_VAL`` type."""
    return {"set": True, "infinite": False, "number": int(value)}


# Slurm's job_state_string(): a state flag (COMPLETING, REQUEUED, ...) names the job
# before its base state, so the flag list becomes the one name squeue v0.0.38 printed.
_FLAG_ORDER = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
)
_FLAGS = frozenset(_FLAG_ORDER) | {"LAUNCH_FAILED", "RECONFIG_FAIL", "POWER_UP_NODE"}


def job_state(value: Any) -> str:
    """``["PENDING", "REQUEUED"]`` -> ``"REQUEUED"``; ``["RUNNING"]`` -> ``"RUNNING"``;
    v0.0.39's single string passes through."""
    if isinstance(value, str):
        return value or "UNKNOWN"
    if not isinstance(value, list) or not value:
        return "UNKNOWN"
    names = [str(v) for v in value]
    for flag in _FLAG_ORDER:
        if flag in names:
            return flag
    base = [n for n in names if n not in _FLAGS]
    return base[0] if base else names[0]


def base_job_state(value: Any) -> str:
    """The base state of a flag list (``["PENDING", "REQUEUED"]`` -> ``"PENDING"``)."""
    if isinstance(value, str):
        return value
    names = [str(v) for v in value or []]
    base = [n for n in names if n not in _FLAGS]
    return base[0] if base else (names[0] if names else "UNKNOWN")


def node_state(value: Any) -> str:
    """``["IDLE", "DRAIN"]`` -> ``"idle+drain"`` (sinfo's long form), lower case."""
    if isinstance(value, list):
        return "+".join(str(v) for v in value).lower()
    return str(value or "").lower()


def exit_code(value: Any) -> int | None:
    """A v0.0.40+ verbose exit code -> the process's code (a signal -> 128 + signal);
    pending, unset or unparsable -> None."""
    if not isinstance(value, Mapping):
        return None
    status = value.get("status")
    names = {str(s) for s in status} if isinstance(status, list) else {str(status or "")}
    if "SIGNALED" in names:
        sig = value.get("signal")
        sig_id = number(sig.get("id")) if isinstance(sig, Mapping) else None
        return 128 + sig_id if sig_id else None
    if names & {"PENDING", "INVALID", ""}:
        return None
    return number(value.get("return_code"))


def wait_status_code(value: Any) -> int | None:
    """A raw wait(2) status (v0.0.38/v0.0.39 live jobs): exit 3 -> 768, SIGKILL -> 9."""
    status = number(value)
    if status is None:
        return None
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF
