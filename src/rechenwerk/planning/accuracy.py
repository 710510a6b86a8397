"""Predicted vs. reported GPU-hours for published training runs (reference CSV).

Each row is estimated with the paper's accelerator, the row's parameters and tokens, and
the DEFAULT MFU and efficiency -- no per-row tuning. Used by the tests, by
``benchmarks/planning_accuracy.py`` and by ``rechenwerk plan accuracy``.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.training import estimate_training

FALLBACK_GPUS = 2048  # GPU count when the paper does not state it (affects days only)


@dataclass(frozen=True, slots=True)
class AccuracyRow:
    model: str
    params_billion: float
    tokens_billion: float
    accelerator: str
    reported_gpu_hours: float
    predicted_gpu_hours: float
    implied_utilisation: float  # 6ND / (reported hours * peak): what the paper achieved
    assumed_utilisation: float  # default MFU x efficiency
    source: str

    @property
    def error(self) -> float:
        return self.predicted_gpu_hours / self.reported_gpu_hours - 1.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = round(self.error, 4)
        return data


def builtin_reference() -> Path:
    """The published runs shipped with Rechenwerk (``planning/data/training-runs.csv``,
    each row with its source)."""
    return Path(str(resources.files("rechenwerk.planning") / "data" / "training-runs.csv"))


def accuracy_table(csv_path: Path | None = None) -> list[AccuracyRow]:
    """Predicted vs. reported GPU-hours of the runs in ``csv_path`` (default: the
    built-in reference)."""
    csv_path = csv_path or builtin_reference()
    if not csv_path.is_file():
        raise InvalidInput(f"reference file {csv_path} does not exist", field="csv",
                           hint="pass a CSV with the columns of planning/data/training-runs.csv")
    rows: list[AccuracyRow] = []
    with csv_path.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            if not (rec.get("reported_gpu_hours") or "").strip():
                continue
            count = int(rec["accelerator_count"]) if rec.get("accelerator_count") else None
            est = estimate_training(
                params=float(rec["params_billion"]) * 1e9,
                tokens=float(rec["tokens_billion"]) * 1e9,
                gpu=rec["accelerator"],
                gpus=count or FALLBACK_GPUS,
            )
            reported = float(rec["reported_gpu_hours"])
            implied = est.training_flops / (reported * 3600.0 * est.gpu.peak_bf16_flops)
            rows.append(AccuracyRow(
                model=rec["model"],
                params_billion=float(rec["params_billion"]),
                tokens_billion=float(rec["tokens_billion"]),
                accelerator=est.gpu.name,
                reported_gpu_hours=reported,
                predicted_gpu_hours=est.gpu_hours,
                implied_utilisation=implied,
                assumed_utilisation=est.effective_utilisation,
                source=rec.get("source", ""),
            ))
    return rows


def markdown_table(rows: list[AccuracyRow]) -> str:
    lines = [
        "| model | params (B) | tokens (B) | GPU | reported GPU-hours | predicted GPU-hours "
        "| error | implied MFU x eff. |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.params_billion:g} | {r.tokens_billion:,.0f} | {r.accelerator} "
            f"| {r.reported_gpu_hours:,.0f} | {r.predicted_gpu_hours:,.0f} "
            f"| {r.error:+.1%} | {r.implied_utilisation:.3f} |"
        )
    return "\n".join(lines)
