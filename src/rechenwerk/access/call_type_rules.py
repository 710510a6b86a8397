"""Call types as data, the pure part: what a type says (GPU-hour range, durations,
eligibility, review steps, decision deadline, submission mode), its own consistency
check, the check of a proposal against it, and a proposal's due date.

Pure and typed: no database, no clock. The table, API and CLI build on these rules
(issue 15 item 1; not wired yet, see docs/access.md "Call types").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from rechenwerk.access.models import OrgKind
from rechenwerk.access.workdays import add_working_days
from rechenwerk.errors import FieldIssue

# The review steps a type may list, in the only order they can run.
REVIEW_STEPS: tuple[str, ...] = ("eligibility", "technical", "scientific", "right_to_reply",
                                 "ranking", "decision")
SUBMISSION_MODES = ("window", "cutoffs", "rolling")
CUTOFF_PERIODS = ("monthly", "quarterly")

# EU member states (27), ISO 3166-1 alpha-2 (Greece is GR).
EU_MEMBER_STATES: frozenset[str] = frozenset(
    ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
     "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"])
# Countries associated to Horizon Europe. Source: European Commission, Funding & Tenders
# portal, "List of participating countries in Horizon Europe" (associated countries as
# of 2025: the list changes with each association agreement, check it before a call).
HORIZON_EUROPE_ASSOCIATED: frozenset[str] = frozenset(
    ["AL", "AM", "BA", "FO", "GE", "IS", "IL", "XK", "MD", "ME", "NZ", "MK", "NO", "RS", "TN",
     "TR", "UA", "GB", "CH", "CA", "KR"])
COUNTRY_LISTS: dict[str, frozenset[str]] = {
    "eu": EU_MEMBER_STATES,
    "eu_and_horizon_associated": EU_MEMBER_STATES | HORIZON_EUROPE_ASSOCIATED,
}
ANY_COUNTRY = "any"


@dataclass(frozen=True, slots=True)
class CallTypeSpec:
    key: str
    title: str
    description: str = ""
    min_gpu_hours: float | None = None
    max_gpu_hours: float | None = None
    duration_months: tuple[int, ...] = (1, 2, 3)  # the allowed durations; () not asked
    eligible_kinds: tuple[str, ...] = tuple(k.value for k in OrgKind)
    countries: str = ANY_COUNTRY  # a key of COUNTRY_LISTS or "any"
    review_steps: tuple[str, ...] = REVIEW_STEPS
    decision_working_days: int = 10
    submission_mode: str = "window"
    cutoff_period: str | None = None  # with submission_mode "cutoffs"
    min_reviews: int = 1  # submitted reviews the scientific step needs


def spec_issues(spec: CallTypeSpec) -> list[FieldIssue]:
    """What is inconsistent in a call type, each issue naming its field."""
    out: list[FieldIssue] = []
    lo, hi = spec.min_gpu_hours, spec.max_gpu_hours
    for name, v in (("min_gpu_hours", lo), ("max_gpu_hours", hi)):
        if v is not None and not (0 < v < float("inf")):
            out.append(FieldIssue((name,), f"must be a positive number, got {v}"))
    if lo is not None and hi is not None and lo > hi:
        out.append(FieldIssue(("max_gpu_hours",), f"{hi:g} is below min_gpu_hours {lo:g}"))
    if len(set(spec.duration_months)) != len(spec.duration_months):
        out.append(FieldIssue(("duration_months",), "must not repeat a duration"))
    for i, m in enumerate(spec.duration_months):
        if not 1 <= m <= 60:
            out.append(FieldIssue(("duration_months", i), f"must be 1..60 months, got {m}"))
    kinds = {k.value for k in OrgKind}
    if not spec.eligible_kinds:
        out.append(FieldIssue(("eligible_kinds",), "must name at least one kind"))
    for i, k in enumerate(spec.eligible_kinds):
        if k not in kinds:
            out.append(FieldIssue(("eligible_kinds", i), f"{k!r} is not an organisation "
                                  f"kind (one of {', '.join(sorted(kinds))})"))
    if spec.countries != ANY_COUNTRY and spec.countries not in COUNTRY_LISTS:
        out.append(FieldIssue(("countries",), f"{spec.countries!r} is not a country list "
                              f"(one of any, {', '.join(COUNTRY_LISTS)})"))
    positions = []
    for i, step in enumerate(spec.review_steps):
        if step not in REVIEW_STEPS:
            out.append(FieldIssue(("review_steps", i), f"{step!r} is not a review step "
                                  f"(one of {', '.join(REVIEW_STEPS)})"))
        else:
            positions.append(REVIEW_STEPS.index(step))
    if positions != sorted(set(positions)):
        out.append(FieldIssue(("review_steps",), "steps must be distinct and in the order "
                              + ", ".join(REVIEW_STEPS)))
    if not 1 <= spec.min_reviews <= 20:
        out.append(FieldIssue(("min_reviews",), f"must be 1..20, got {spec.min_reviews}"))
    if not 0 <= spec.decision_working_days <= 365:
        out.append(FieldIssue(("decision_working_days",),
                              f"must be 0..365, got {spec.decision_working_days}"))
    if spec.submission_mode not in SUBMISSION_MODES:
        out.append(FieldIssue(("submission_mode",), f"{spec.submission_mode!r} is not one "
                              f"of {', '.join(SUBMISSION_MODES)}"))
    elif (spec.submission_mode == "cutoffs") != (spec.cutoff_period is not None):
        out.append(FieldIssue(("cutoff_period",), "give monthly or quarterly with "
                              "submission_mode cutoffs, and only then"))
    elif spec.cutoff_period is not None and spec.cutoff_period not in CUTOFF_PERIODS:
        out.append(FieldIssue(("cutoff_period",), f"{spec.cutoff_period!r} is not one of "
                              f"{', '.join(CUTOFF_PERIODS)}"))
    return out


def proposal_issues(spec: CallTypeSpec, *, requested_gpu_hours: float,
                    duration_months: int | None, org_kind: str,
                    country: str, require_duration: bool = True) -> list[FieldIssue]:
    """Why a proposal does not fit the call type, each issue naming the field and the
    limit (empty: it fits). A type with no ``duration_months`` does not ask for one;
    ``require_duration`` False lets a draft leave it out until submission."""
    out: list[FieldIssue] = []
    if spec.min_gpu_hours is not None and requested_gpu_hours < spec.min_gpu_hours:
        out.append(FieldIssue(("requested_gpu_hours",), (
            f"{requested_gpu_hours:g} GPU-hours are below the minimum of "
            f"{spec.min_gpu_hours:g} of call type {spec.key!r}")))
    if spec.max_gpu_hours is not None and requested_gpu_hours > spec.max_gpu_hours:
        out.append(FieldIssue(("requested_gpu_hours",), (
            f"{requested_gpu_hours:g} GPU-hours exceed the maximum of "
            f"{spec.max_gpu_hours:g} of call type {spec.key!r}")))
    allowed = ", ".join(str(m) for m in spec.duration_months)
    if not spec.duration_months:  # the type does not ask; a duration given must be sane
        if duration_months is not None and not 1 <= duration_months <= 60:
            out.append(FieldIssue(("duration_months",),
                                  f"must be 1..60 months, got {duration_months}"))
    elif duration_months is None:
        if require_duration:
            out.append(FieldIssue(("duration_months",),
                                  f"is required by call type {spec.key!r}: one of "
                                  f"{allowed} months"))
    elif duration_months not in spec.duration_months:
        out.append(FieldIssue(("duration_months",), (
            f"{duration_months} months is not allowed by call type {spec.key!r}: "
            f"one of {allowed}")))
    if org_kind not in spec.eligible_kinds:
        out.append(FieldIssue(("organization.kind",), (
            f"organisations of kind {org_kind!r} are not eligible for call type "
            f"{spec.key!r} (eligible: {', '.join(spec.eligible_kinds)})")))
    if spec.countries != ANY_COUNTRY and country not in COUNTRY_LISTS[spec.countries]:
        out.append(FieldIssue(("organization.country",), (
            f"country {country!r} is not eligible for call type {spec.key!r} "
            f"(list {spec.countries!r})")))
    return out


def next_cutoff(submitted: date, period: str) -> date:
    """The first cut-off strictly after ``submitted``: the 1st of the next month
    (monthly) or of the next quarter, January/April/July/October (quarterly)."""
    step = 1 if period == "monthly" else 3
    month0 = submitted.month - 1
    nxt = (month0 // step + 1) * step
    return date(submitted.year + nxt // 12, nxt % 12 + 1, 1)


def due_date(spec: CallTypeSpec, submitted: date,
             holidays: Collection[date] = frozenset()) -> date:
    """When the decision is due: ``decision_working_days`` working days after submission
    (window, rolling) or after the next cut-off following it (cutoffs)."""
    start = submitted
    if spec.submission_mode == "cutoffs" and spec.cutoff_period is not None:
        start = next_cutoff(submitted, spec.cutoff_period)
    return add_working_days(start, spec.decision_working_days, holidays)


# EuroHPC JU AI Factories access calls (eurohpc-ju.europa.eu, "AI Factories" access calls
# pages) and the classic EuroHPC access modes; figures as published there, the classic
# modes' deadlines are Rechenwerk's defaults (see docs/access.md "Call types").
EUROHPC_TYPES: tuple[CallTypeSpec, ...] = (
    CallTypeSpec("playground", "AI Factories Playground",
                 "Entry level for startups and SMEs, free of charge; short application; "
                 "eligibility and technical check only.",
                 duration_months=(1, 2, 3), eligible_kinds=("sme", "startup"),
                 countries="eu_and_horizon_associated",
                 review_steps=("eligibility", "technical", "decision"),
                 decision_working_days=2, submission_mode="rolling"),
    CallTypeSpec("fast-lane", "AI Factories Fast Lane",
                 "Up to 50,000 GPU-hours; eligibility and technical check.",
                 max_gpu_hours=50_000, duration_months=(1, 2, 3),
                 countries="eu_and_horizon_associated",
                 review_steps=("eligibility", "technical", "decision"),
                 decision_working_days=4, submission_mode="rolling"),
    CallTypeSpec("large-scale", "AI Factories Large Scale",
                 "Over 50,000 GPU-hours; full peer review after each cut-off.",
                 min_gpu_hours=50_001, duration_months=(3, 6, 12),
                 countries="eu_and_horizon_associated",
                 decision_working_days=10, submission_mode="cutoffs",
                 cutoff_period="monthly"),
    CallTypeSpec("benchmark", "Benchmark access", "Short benchmark and scaling runs.",
                 duration_months=(1, 2, 3), countries="eu_and_horizon_associated",
                 review_steps=("eligibility", "technical", "decision"),
                 decision_working_days=10, submission_mode="cutoffs",
                 cutoff_period="monthly"),
    CallTypeSpec("development", "Development access",
                 "Code and algorithm development; technical and scientific review.",
                 duration_months=tuple(range(1, 13)), countries="eu_and_horizon_associated",
                 review_steps=("eligibility", "technical", "scientific", "decision"),
                 decision_working_days=20, submission_mode="cutoffs",
                 cutoff_period="monthly"),
    CallTypeSpec("regular", "Regular access",
                 "Large research projects; full peer review with right to reply.",
                 duration_months=(12,), countries="eu_and_horizon_associated",
                 decision_working_days=60, submission_mode="cutoffs",
                 cutoff_period="quarterly"),
)


# The type of each access mode's calls from before call types existed (migration 0020
# gives existing calls these): the call's own window, eligible kinds and cap decide as
# before; no duration is asked; the deadlines are Rechenwerk's defaults.
ACCESS_MODE_TYPES: dict[str, CallTypeSpec] = {
    "research": CallTypeSpec("research", "Research access",
                             "Peer-reviewed access for research groups.",
                             duration_months=(), decision_working_days=60),
    "innovation": CallTypeSpec("innovation", "Innovation access",
                               "Access for SMEs and startups developing AI products.",
                               duration_months=(), decision_working_days=20),
    "fast_lane": CallTypeSpec("fast_lane", "Fast lane",
                              "Small grants decided quickly.", duration_months=(),
                              review_steps=("eligibility", "technical", "decision"),
                              decision_working_days=5),
    "pay_per_use": CallTypeSpec("pay_per_use", "Pay-per-use",
                                "Paid access at the centre's prices.", duration_months=(),
                                review_steps=("eligibility", "decision"),
                                decision_working_days=5),
}
