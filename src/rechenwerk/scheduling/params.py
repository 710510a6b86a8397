"""Policy parameters, in Slurm's vocabulary where one exists."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rechenwerk.errors import FieldIssue, invalid_input, issues_from_validation


def _default_qos() -> dict[str, float]:
    return {"low": 0.0, "normal": 0.5, "high": 1.0}


@dataclass(frozen=True, slots=True)
class PolicyParams:
    # backfill (Slurm: bf_interval, bf_max_job_test)
    bf_interval_s: float = 30.0
    bf_max_job_test: int = 100
    # Slurm's backfill thread is a timer: with a phase set, backfill passes run only at
    # bf_phase_s + k * bf_interval_s (None: at the first event bf_interval_s after the last)
    bf_phase_s: float | None = None
    # Slurm's bf_resolution: a pending job's reservation is widened to this grid (start
    # rounded down, end up; grid points at bf_grid_origin_s + k * resolution), so a
    # backfill candidate must clear it by up to one resolution step (None: exact times)
    bf_resolution_s: float | None = None
    bf_grid_origin_s: float = 0.0
    # multifactor priority (Slurm: PriorityWeight*, PriorityMaxAge, PriorityDecayHalfLife,
    # PriorityCalcPeriod)
    weight_age: float = 1000.0
    weight_fairshare: float = 10000.0
    weight_jobsize: float = 1000.0
    weight_qos: float = 1000.0
    max_age_s: float = 7 * 86400.0
    fairshare_half_life_s: float = 7 * 86400.0
    priority_calc_period_s: float = 300.0
    qos_priority: Mapping[str, float] = field(default_factory=_default_qos)
    # fair-share shares and quota guarantees per project (override Snapshot.projects)
    shares: Mapping[str, float] | None = None
    guarantees: Mapping[str, int] | None = None
    # preemption: work since the last checkpoint is lost on requeue (None: no checkpoints)
    checkpoint_interval_s: float | None = 3600.0
    # LAS: attained-service thresholds (GPU-seconds) between the discretised queues
    las_thresholds_gpu_s: tuple[float, ...] = (3600.0, 36000.0, 360000.0)
    # LAS starvation guard (Tiresias' STARVELIMIT): a job waiting in a lower queue for
    # longer than this many times its last run is promoted to queue 0 (None: off)
    las_starve_limit: float | None = None
    # LAS / quota: how many waiting jobs one cycle examines at most
    max_job_test: int = 200
    # fair-las: a job queued this long (plus las_starve_limit x its last run, when set)
    # is overdue and may preempt to start; a running job is not preempted before it has
    # run fairlas_min_run_s; at most fairlas_max_preempt_tries preemption attempts a cycle
    fairlas_starve_s: float = 7 * 86400.0
    fairlas_min_run_s: float = 600.0
    fairlas_max_preempt_tries: int = 8

    def __post_init__(self) -> None:
        issues: list[FieldIssue] = []

        def check(name: str, ok: bool, msg: str) -> None:
            if not ok:
                issues.append(FieldIssue((name,), msg))

        check("bf_interval_s", self.bf_interval_s >= 0, "must be >= 0 seconds")
        ph = self.bf_phase_s
        check("bf_phase_s", ph is None or math.isfinite(ph), "must be a finite number or None")
        rs = self.bf_resolution_s
        check("bf_resolution_s", rs is None or (rs > 0 and math.isfinite(rs)),
              "must be a finite number > 0 seconds or None")
        check("bf_grid_origin_s", math.isfinite(self.bf_grid_origin_s), "must be finite")
        check("bf_max_job_test", self.bf_max_job_test >= 1, "must be >= 1")
        check("max_job_test", self.max_job_test >= 1, "must be >= 1")
        check("max_age_s", self.max_age_s > 0, "must be > 0 seconds")
        check("fairshare_half_life_s", self.fairshare_half_life_s > 0, "must be > 0 seconds")
        check("priority_calc_period_s", self.priority_calc_period_s >= 0, "must be >= 0")
        for w in ("weight_age", "weight_fairshare", "weight_jobsize", "weight_qos"):
            v = getattr(self, w)
            check(w, v >= 0 and math.isfinite(v), "must be a finite number >= 0")
        ci = self.checkpoint_interval_s
        check("checkpoint_interval_s", ci is None or ci > 0, "must be > 0 seconds or None")
        sl = self.las_starve_limit
        check(
            "las_starve_limit",
            sl is None or (sl > 0 and math.isfinite(sl)),
            "must be a finite number > 0 (a multiple of the job's last run time) or None",
        )
        check("fairlas_starve_s", self.fairlas_starve_s >= 0
              and math.isfinite(self.fairlas_starve_s), "must be a finite number >= 0 seconds")
        check("fairlas_min_run_s", self.fairlas_min_run_s >= 0
              and math.isfinite(self.fairlas_min_run_s), "must be a finite number >= 0 seconds")
        check("fairlas_max_preempt_tries", self.fairlas_max_preempt_tries >= 0, "must be >= 0")
        th = self.las_thresholds_gpu_s
        check(
            "las_thresholds_gpu_s",
            all(t > 0 for t in th) and list(th) == sorted(set(th)),
            "must be strictly increasing positive GPU-seconds",
        )
        if self.shares is not None:
            for p, s in self.shares.items():
                check(f"shares.{p}", s > 0, "share must be > 0")
        if self.guarantees is not None:
            for p, g in self.guarantees.items():
                check(f"guarantees.{p}", g >= 0, "guarantee must be >= 0 GPUs")
        if issues:
            raise invalid_input(issues, prefix="invalid scheduling parameter ",
                                hint="see docs/scheduling.md for every parameter and its unit")



# Read by pydantic when validating an operator's mapping (params_from_mapping): unknown
# keys are errors, not silently ignored. A plain dict, so the core imports no pydantic.
PolicyParams.__pydantic_config__ = {"extra": "forbid"}  # type: ignore[attr-defined]


def params_from_mapping(data: Mapping[str, object], *, source: str) -> PolicyParams:
    """PolicyParams from an operator's mapping (a YAML file or JSON object), with an
    error that names ``source`` and the key for anything unknown or mistyped."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(PolicyParams).validate_python(dict(data))
    except ValidationError as exc:
        issues = issues_from_validation(exc)
        first = issues[0]
        what = ("unknown scheduling parameter" if exc.errors()[0]["type"]
                == "unexpected_keyword_argument" else first.message)
        raise invalid_input(
            issues, message=f"{source}: {first.path}: {what}",
            hint="Parameters and units: docs/scheduling.md (e.g. weight_fairshare: 10000, "
            "fairshare_half_life_s: 604800).",
        ) from None
