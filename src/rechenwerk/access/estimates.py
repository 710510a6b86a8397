"""A proposal's training-compute estimate: the planner's inputs, validated and computed by
``rechenwerk.planning`` and kept with the proposal so reviewers can compare the request
with the plan.

The dependency is one-way: access imports planning, planning knows nothing of proposals.
Errors from the planner are re-raised with their field under ``estimate.`` (e.g.
``estimate.gpu``), because in a proposal the inputs are one nested object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rechenwerk.errors import FieldIssue, InvalidInput, invalid_input
from rechenwerk.planning.schemas import TrainRequest, estimate_from_inputs

FIELD = "estimate"
# A planner estimate is good to about ±30 % (docs/planning.md, training estimator): a request
# more than 30 % above the estimate, or under half of it, is worth a reviewer's question.
OVER_RATIO = 1.3
UNDER_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class Estimate:
    """Validated inputs (as given, GPU name canonical) and the planner's result."""

    inputs: dict[str, Any]
    result: dict[str, Any]

    @property
    def gpu(self) -> str:
        return str(self.result["hardware"]["gpu"])

    @property
    def gpu_hours(self) -> float:
        return float(self.result["gpu_hours"])


def _prefixed(exc: InvalidInput) -> InvalidInput:
    """The planner's error with every field path under ``estimate.``."""
    issues = [FieldIssue((FIELD, *i.loc), i.message) for i in exc.issues]
    field = f"{FIELD}.{exc.field}" if exc.field else FIELD
    message = exc.message.removeprefix("invalid training estimate input: ")
    if not issues:
        issues = [FieldIssue(tuple(field.split(".")), message)]
    return invalid_input(issues, hint=exc.hint)


def compute(inputs: Mapping[str, Any]) -> Estimate:
    """Validate ``inputs`` (the schema of ``POST /api/v1/plan/train``) and estimate them;
    InvalidInput naming ``estimate.<field>`` on bad input."""
    if not isinstance(inputs, Mapping):
        raise InvalidInput("estimate: must be an object of estimator inputs", field=FIELD,
                           hint="e.g. {\"params\": 7e9, \"tokens\": 2e12, \"gpu\": "
                                "\"H100\", \"gpus\": 64} (see docs/planning.md)")
    try:
        est = estimate_from_inputs(inputs)
    except InvalidInput as exc:
        raise _prefixed(exc) from None
    # Keep what was given (not the defaults: they are in the result's assumptions), with
    # the GPU under its canonical name so it compares with the proposal's.
    stored = TrainRequest.model_validate(dict(inputs)).model_dump(exclude_unset=True)
    stored["gpu"] = est.gpu.name
    return Estimate(inputs=stored, result=est.to_dict())


def gpu_mismatch(estimate_gpu: str, proposal_gpu: str) -> str | None:
    """Why an estimate does not fit the proposal's GPU type (None if it does): GPU-hours on
    one type say little about another (an H100 does ~3x the work of an A100 per hour)."""
    if estimate_gpu == proposal_gpu:
        return None
    return (f"the estimate is for {estimate_gpu} but the proposal asks for {proposal_gpu}; "
            f"estimate on {proposal_gpu}, change the proposal's GPU type, or remove the "
            "estimate")


def audit_value(inputs: Mapping[str, Any] | None,
                result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the audit log keeps of an estimate: the inputs and the GPU-hours."""
    if inputs is None or result is None:
        return None
    return {"inputs": dict(inputs), "gpu_hours": result["gpu_hours"]}


def ratio(requested_gpu_hours: float, estimate_gpu_hours: float) -> float | None:
    """Requested / estimated GPU-hours (None if the estimate is zero)."""
    if estimate_gpu_hours <= 0:
        return None
    return requested_gpu_hours / estimate_gpu_hours


def requested_vs_estimate(requested_gpu_hours: float,
                          estimate_gpu_hours: float) -> float | None:
    """The ratio as shown (three decimals)."""
    r = ratio(requested_gpu_hours, estimate_gpu_hours)
    return None if r is None else round(r, 3)


def request_check(r: float | None) -> str:
    """``over`` (> 30 % above the estimate), ``under`` (< half of it) or ``ok``."""
    if r is None:
        return "ok"
    if r > OVER_RATIO:
        return "over"
    if r < UNDER_RATIO:
        return "under"
    return "ok"


def summary(inputs: Mapping[str, Any], result: Mapping[str, Any],
            requested_gpu_hours: float) -> dict[str, Any]:
    """The key numbers of a stored estimate and how the request compares, for the API,
    the CLI and the portal alike."""
    memory = result.get("memory") or {}
    r = ratio(requested_gpu_hours, float(result["gpu_hours"]))
    return {
        "inputs": dict(inputs),
        "gpu": result["hardware"]["gpu"],
        "gpus": result["hardware"]["gpus"],
        "params": result["model"]["params"],
        "tokens": result["model"]["tokens"],
        "gpu_hours": result["gpu_hours"],
        "wall_clock_days": result["wall_clock_days"],
        "energy_mwh": result["energy_mwh"],
        "co2_t": result["co2_t"],
        "memory_feasible": bool(memory.get("feasible", True)),
        "memory_message": str(memory.get("message", "")),
        "warnings": list(result.get("warnings") or []),
        "requested_vs_estimate": requested_vs_estimate(requested_gpu_hours,
                                                       float(result["gpu_hours"])),
        "request_check": request_check(r),
    }
