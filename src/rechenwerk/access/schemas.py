"""Request and response bodies of the access API (Pydantic). Quantities are numbers with
their unit in the name (``gpu_hours``, ``credit_limit_eur``)."""

from __future__ import annotations

from datetime import date, datetime
from types import UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from rechenwerk.access import estimates
from rechenwerk.access.call_type_rules import (
    ANY_COUNTRY,
    COUNTRY_LISTS,
    CUTOFF_PERIODS,
    REVIEW_STEPS,
    SUBMISSION_MODES,
    CallTypeSpec,
)
from rechenwerk.access.calls import call_status
from rechenwerk.access.fields_of_science import label as fos_label
from rechenwerk.access.models import (
    AccessMode,
    ApiToken,
    AuditEntry,
    Award,
    AwardChange,
    AwardVersion,
    Call,
    CallType,
    Organization,
    OrgKind,
    PayPerUseAccount,
    Project,
    ProjectMembership,
    Proposal,
    ProposalAssessment,
    ReportTask,
    Review,
    User,
)
from rechenwerk.access.paging import Page
from rechenwerk.access.proposal_states import is_overdue
from rechenwerk.access.security import MAX_TOKEN_DAYS
from rechenwerk.access.validation import MAX_ID, MIN_ID
from rechenwerk.planning.schemas import TrainRequest

T = TypeVar("T")


def _id_or_name(value: Any) -> Any:
    """A reference in a body is a name or an id the database can hold: a boolean is
    neither, and a number outside the id columns' range (``MAX_ID``) names nothing (and
    PostgreSQL would refuse it in the query)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a name or a numeric id, not {str(value).lower()}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, float) or (
            isinstance(value, int) and not MIN_ID <= value <= MAX_ID):
        raise ValueError(f"{value} is not an id: ids are whole numbers up to {MAX_ID}")
    return value


# An id in a body: a whole number within the id columns' range (_In refuses booleans).
DbId = Annotated[int, Field(ge=MIN_ID, le=MAX_ID)]
# A slug/name or a numeric id (an id as for DbId).
Ref = Annotated[str | Annotated[int, Field(ge=MIN_ID, le=MAX_ID)],
                BeforeValidator(_id_or_name)]


def _alternatives(annotation: Any) -> list[Any]:
    """The types a field accepts: the members of its unions, without ``Annotated``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [t for a in get_args(annotation) for t in _alternatives(a)]
    return [annotation]


def _holds_numbers(annotation: Any) -> bool:
    """Whether a field takes a number (``float | None``) or a mapping to numbers
    (``dict[str, float]``), and no text (a Ref, a name or an id, refuses booleans itself,
    in its own words)."""
    kinds = _alternatives(annotation)
    if str in kinds:
        return False
    return any(k in (int, float) or (get_origin(k) is dict and get_args(k)[1] in (int, float))
               for k in kinds)


_NUMERIC_FIELDS: dict[tuple[type, str], bool] = {}  # (model, field) -> _holds_numbers


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``true`` is no number: pydantic would read it as 1 (a price of 1 EUR, a token
        for 1 day)."""
        name = info.field_name or ""
        numeric = _NUMERIC_FIELDS.get((cls, name))
        if numeric is None:
            field = cls.model_fields.get(name)
            numeric = _NUMERIC_FIELDS[(cls, name)] = (
                field is not None and _holds_numbers(field.annotation))
        if not numeric:
            return v
        if isinstance(v, bool):
            raise ValueError(f"must be a number, not {str(v).lower()}")
        if isinstance(v, dict):
            for key, item in v.items():
                if isinstance(item, bool):
                    raise ValueError(f"{key}: must be a number, not {str(item).lower()}")
        return v


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page_out(page: Page[Any], items: list[T]) -> PageOut[T]:
    return PageOut[T](items=items, total=page.total, limit=page.limit, offset=page.offset)


# --------------------------------------------------------------------------- organisations


class OrganizationCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: OrgKind
    country: str = Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE")


class OrganizationOut(BaseModel):
    id: int
    name: str
    kind: str
    country: str
    created_at: datetime

    @classmethod
    def of(cls, o: Organization) -> OrganizationOut:
        return cls(id=o.id, name=o.name, kind=o.kind, country=o.country,
                   created_at=o.created_at)


# --------------------------------------------------------------------------- users, tokens


class UserCreate(_In):
    username: str = Field(min_length=2, max_length=63)
    email: str = Field(min_length=3, max_length=254)
    full_name: str = ""
    organization: Ref | None = None
    is_operator: bool = False
    is_reviewer: bool = False
    password: str | None = Field(default=None, min_length=8)


class UserUpdate(_In):
    full_name: str | None = None
    email: str | None = Field(default=None, min_length=3, max_length=254)
    organization: Ref | None = None
    is_operator: bool | None = None
    is_reviewer: bool | None = None
    is_active: bool | None = None


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    full_name: str
    organization: str | None
    organization_id: int | None
    organization_kind: str | None
    is_operator: bool
    is_reviewer: bool
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        org = u.organization
        return cls(id=u.id, username=u.username, email=u.email, full_name=u.full_name,
                   organization=org.name if org else None, organization_id=u.organization_id,
                   organization_kind=org.kind if org else None, is_operator=u.is_operator,
                   is_reviewer=u.is_reviewer, is_active=u.is_active, created_at=u.created_at)


class MembershipOut(BaseModel):
    project: str
    project_id: int
    role: str


class WhoAmI(UserOut):
    memberships: list[MembershipOut]


class TokenCreate(_In):
    name: str = Field(default="cli", min_length=1, max_length=100)
    expires_in_days: float | None = Field(default=None, gt=0, le=MAX_TOKEN_DAYS)
    scope: Literal["full", "read"] = Field(
        default="full", description="read: only safe methods (GET, HEAD)")
    username: str | None = Field(default=None, description="operators: create for this user")


class PasswordLogin(_In):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    name: str = Field(default="cli", min_length=1, max_length=100, description="token name")
    expires_in_days: float = Field(default=90, gt=0, le=MAX_TOKEN_DAYS)


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    scope: str

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(id=t.id, user=t.user.username, name=t.name, prefix=t.prefix,
                   created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at,
                   last_used_at=t.last_used_at, scope=t.scope)


# --------------------------------------------------------------------------- AUP


class AupPublish(_In):
    text: str = Field(min_length=1, max_length=100_000)


class AupAccept(_In):
    version: int = Field(ge=1, description="the version shown to the user (must be current)")


class AupOut(BaseModel):
    version: int
    text: str
    published_at: datetime
    published_by: str
    accepted_at: datetime | None = Field(description="when you accepted it; null: not yet")


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only once")


# --------------------------------------------------------------------------- projects


class ProjectCreate(_In):
    slug: str = Field(min_length=2, max_length=63, description="also the Slurm account name")
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    pi: str | None = Field(default=None, description="operators: the PI's username")
    field_of_science: str | None = Field(
        default=None, max_length=64,
        description="OECD FORD code, e.g. 1.2 (GET /api/v1/fields-of-science)")


class ProjectUpdate(_In):
    """Only the fields sent change; ``field_of_science: null`` clears it."""

    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = None
    field_of_science: str | None = Field(
        default=None, max_length=64,
        description="OECD FORD code, e.g. 1.2 (GET /api/v1/fields-of-science); null clears")


class FieldOfScienceOut(BaseModel):
    code: str
    name: str
    major: str


class MemberAdd(_In):
    username: str = Field(min_length=1)
    role: Literal["member", "viewer"] = "member"


class MemberOut(BaseModel):
    username: str
    full_name: str
    role: str
    since: datetime

    @classmethod
    def of(cls, m: ProjectMembership) -> MemberOut:
        return cls(username=m.user.username, full_name=m.user.full_name, role=m.role,
                   since=m.created_at)


class ProjectOut(BaseModel):
    id: int
    slug: str
    title: str
    description: str
    organization: str
    organization_id: int
    organization_kind: str
    pi: str
    created_at: datetime
    field_of_science: str | None = None
    field_of_science_label: str = ""
    approval: str = Field(default="approved", description="approved, pending or rejected")
    approval_note: str = ""
    members: list[MemberOut] | None = None

    @classmethod
    def of(cls, p: Project, members: list[ProjectMembership] | None = None) -> ProjectOut:
        return cls(id=p.id, slug=p.slug, title=p.title, description=p.description,
                   organization=p.organization.name, organization_id=p.organization_id,
                   organization_kind=p.organization.kind, pi=p.pi.username,
                   created_at=p.created_at, field_of_science=p.field_of_science,
                   field_of_science_label=fos_label(p.field_of_science),
                   approval=p.approval, approval_note=p.approval_note,
                   members=[MemberOut.of(m) for m in members] if members is not None else None)


class ProjectDecision(_In):
    decision: Literal["approved", "rejected"]
    note: str = Field(default="", max_length=5000, description="required for a rejection")


# --------------------------------------------------------------------------- calls


class CallTypeCreate(_In):
    """A call type's rules; every inconsistency is reported at once, naming its field."""

    key: str = Field(min_length=2, max_length=63, description="e.g. fast-lane")
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    min_gpu_hours: float | None = Field(default=None, gt=0, description="per proposal")
    max_gpu_hours: float | None = Field(default=None, gt=0, description="per proposal")
    duration_months: list[int] = Field(
        default_factory=lambda: [1, 2, 3],
        description="the durations a proposal may ask for; [] asks for none")
    eligible_kinds: list[OrgKind] = Field(default_factory=lambda: list(OrgKind))
    countries: str = Field(default=ANY_COUNTRY, description="any, " + ", ".join(COUNTRY_LISTS))
    review_steps: list[str] = Field(default_factory=lambda: list(REVIEW_STEPS),
                                    description="in order, from: " + ", ".join(REVIEW_STEPS))
    decision_working_days: int = Field(default=10, ge=0, le=365)
    submission_mode: str = Field(default="window",
                                 description=", ".join(SUBMISSION_MODES))
    cutoff_period: str | None = Field(default=None, description="with submission_mode "
                                      "cutoffs: " + ", ".join(CUTOFF_PERIODS))
    min_reviews: int = Field(default=1, description="submitted reviews the scientific "
                             "step needs (1..20)")

    def spec(self) -> CallTypeSpec:
        return CallTypeSpec(
            key=self.key, title=self.title, description=self.description,
            min_gpu_hours=self.min_gpu_hours, max_gpu_hours=self.max_gpu_hours,
            duration_months=tuple(self.duration_months),
            eligible_kinds=tuple(k.value for k in self.eligible_kinds),
            countries=self.countries, review_steps=tuple(self.review_steps),
            decision_working_days=self.decision_working_days,
            submission_mode=self.submission_mode, cutoff_period=self.cutoff_period,
            min_reviews=self.min_reviews)


class CallTypeOut(BaseModel):
    id: int
    key: str
    title: str
    description: str
    min_gpu_hours: float | None
    max_gpu_hours: float | None
    duration_months: list[int]
    eligible_kinds: list[str]
    countries: str
    review_steps: list[str]
    decision_working_days: int
    submission_mode: str
    cutoff_period: str | None
    min_reviews: int = 1
    created_at: datetime

    @classmethod
    def of(cls, t: CallType) -> CallTypeOut:
        return cls(id=t.id, key=t.key, title=t.title, description=t.description,
                   min_gpu_hours=t.min_gpu_hours, max_gpu_hours=t.max_gpu_hours,
                   duration_months=list(t.duration_months),
                   eligible_kinds=list(t.eligible_kinds), countries=t.countries,
                   review_steps=list(t.review_steps),
                   decision_working_days=t.decision_working_days,
                   submission_mode=t.submission_mode, cutoff_period=t.cutoff_period,
                   min_reviews=t.min_reviews, created_at=t.created_at)


class CallCreate(_In):
    slug: str = Field(min_length=2, max_length=63)
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    access_mode: AccessMode
    eligible_kinds: list[OrgKind] | None = Field(
        default=None, description="default depends on access_mode")
    opens_at: datetime | None = Field(default=None, description="default: now")
    closes_at: datetime
    max_gpu_hours: float | None = Field(default=None, gt=0, description="per proposal")
    call_type: Ref | None = Field(default=None, description="key or id; default: the "
                                  "access mode's type")
    budget_gpu_hours: float | None = Field(default=None, gt=0, description="GPU-hours "
                                           "the call awards in all (the ranking's budget)")


class CallOut(BaseModel):
    id: int
    slug: str
    title: str
    description: str
    access_mode: str
    eligible_kinds: list[str]
    opens_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    max_gpu_hours: float | None
    status: str
    created_at: datetime
    call_type: CallTypeOut
    budget_gpu_hours: float | None = None

    @classmethod
    def of(cls, c: Call, now: datetime) -> CallOut:
        return cls(id=c.id, slug=c.slug, title=c.title, description=c.description,
                   access_mode=c.access_mode, eligible_kinds=list(c.eligible_kinds),
                   opens_at=c.opens_at, closes_at=c.closes_at, closed_at=c.closed_at,
                   max_gpu_hours=c.max_gpu_hours, status=call_status(c, now),
                   created_at=c.created_at, call_type=CallTypeOut.of(c.call_type),
                   budget_gpu_hours=c.budget_gpu_hours)


# --------------------------------------------------------------------------- proposals


class ProposalCreate(_In):
    call: Ref
    project: Ref
    title: str = Field(min_length=1, max_length=300)
    abstract: str = ""
    justification: str = ""
    gpu_type: str = Field(min_length=1)
    requested_gpu_hours: float = Field(gt=0)
    duration_months: int | None = Field(default=None, ge=1, le=60,
                                        description="where the call type asks for one")
    estimate: TrainRequest | None = Field(
        default=None, description="training-estimate inputs (as POST /api/v1/plan/train) "
                                  "on the proposal's GPU type; the result is computed and kept")

    def estimate_inputs(self) -> dict[str, Any] | None:
        return None if self.estimate is None else self.estimate.model_dump(exclude_unset=True)


class ProposalUpdate(_In):
    """Only the fields to change (drafts only); absent or null fields stay as they are,
    except ``estimate``: null removes the attached estimate."""

    title: str | None = Field(default=None, min_length=1, max_length=300)
    abstract: str | None = None
    justification: str | None = None
    gpu_type: str | None = Field(default=None, min_length=1)
    requested_gpu_hours: float | None = Field(default=None, gt=0)
    duration_months: int | None = Field(default=None, ge=1, le=60)
    estimate: TrainRequest | None = Field(
        default=None, description="new training-estimate inputs (replace the attached "
                                  "estimate); null removes it")

    def estimate_inputs(self) -> dict[str, Any] | None:
        return None if self.estimate is None else self.estimate.model_dump(exclude_unset=True)

    @property
    def remove_estimate(self) -> bool:
        return "estimate" in self.model_fields_set and self.estimate is None


class WithdrawIn(_In):
    reason: str = Field(default="", max_length=2000,
                        description="why; recorded in the audit log")


class ReviewerAssign(_In):
    reviewer: str = Field(min_length=1)
    due_on: date | None = Field(default=None, description="answer the invitation by "
                                "(default: 5 working days)")


class InvitationAnswer(_In):
    accept: bool
    reason: str = Field(default="", max_length=2000, description="required when declining")


class ReviewCreate(_In):
    technical_score: int = Field(ge=1, le=5)
    scientific_score: int = Field(ge=1, le=5)
    comment: str = ""


class AssessmentIn(_In):
    step: Literal["eligibility", "technical"]
    outcome: Literal["pass", "fail"]
    note: str = Field(default="", max_length=4000,
                      description="required with fail: why; shown to the applicant")


class AssessmentOut(BaseModel):
    id: int
    proposal_id: int
    step: str
    outcome: str
    note: str
    by: str | None = Field(description="the operator; null when implied by migration 0024 "
                                       "or hidden from applicants")
    at: datetime

    @classmethod
    def of(cls, a: ProposalAssessment, *, show_by: bool) -> AssessmentOut:
        return cls(id=a.id, proposal_id=a.proposal_id, step=a.step, outcome=a.outcome,
                   note=a.note, by=a.by.username if show_by and a.by else None, at=a.at)


class StepOut(BaseModel):
    step: str
    done: bool
    detail: str


class PipelineOut(BaseModel):
    proposal_id: int
    state: str
    call_type: str
    step: str | None = Field(description="the step the proposal is at; null unless "
                                         "submitted or under review")
    steps: list[StepOut] = Field(description="the call type's steps in order")
    assessments: list[AssessmentOut]
    reply_due_on: date | None = Field(default=None, description="the applicant may reply "
                                      "to the reviews until this day (right_to_reply)")
    reply_text: str | None = None
    replied_at: datetime | None = None


class RankingRowOut(BaseModel):
    position: int
    proposal_id: int
    title: str
    project: str
    mean_score: float = Field(description="mean of the technical and scientific scores")
    submitted_at: datetime | None
    requested_gpu_hours: float
    cumulative_gpu_hours: float
    recommended_gpu_hours: float = Field(description="full while the budget lasts, the "
                                         "remainder for the first that does not fit, 0 after")


class RankingOut(BaseModel):
    call: str
    budget_gpu_hours: float | None
    rows: list[RankingRowOut]
    confirmed: bool = False


class ReplyIn(_In):
    text: str = Field(min_length=1, max_length=10_000,
                      description="the applicant's one reply to the reviews")


class DecisionIn(_In):
    decision: Literal["accepted", "rejected"]
    comment: str = ""
    granted_gpu_hours: float | None = Field(
        default=None, description="accepted: GPU-hours granted, at most the request "
                                  "(default: the request; less is a partial award)")


class EstimateOut(BaseModel):
    """A proposal's attached training-compute estimate: the inputs and the key results as
    computed when it was attached (``result`` holds the planner's full answer)."""

    inputs: dict[str, Any] = Field(description="as POST /api/v1/plan/train")
    attached_at: datetime
    gpu: str
    gpus: int
    params: float
    tokens: float
    gpu_hours: float
    wall_clock_days: float
    energy_mwh: float
    co2_t: float
    memory_feasible: bool
    memory_message: str
    warnings: list[str]
    request_check: Literal["ok", "over", "under"] = Field(
        description="over: request > 1.3 x estimate; under: request < 0.5 x estimate")
    result: dict[str, Any] = Field(description="the planner's full result (units inside)")

    @classmethod
    def of(cls, p: Proposal) -> EstimateOut | None:
        if p.estimate_inputs is None or p.estimate_result is None:
            return None
        data = estimates.summary(p.estimate_inputs, p.estimate_result, p.requested_gpu_hours)
        data.pop("requested_vs_estimate")
        return cls(**data, attached_at=p.estimate_attached_at or p.created_at,
                   result=p.estimate_result)


class ProposalOut(BaseModel):
    id: int
    call: str
    call_id: int
    project: str
    project_id: int
    organization: str
    applicant: str
    title: str
    abstract: str
    justification: str
    gpu_type: str
    requested_gpu_hours: float
    state: str
    decision_comment: str
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    duration_months: int | None = None
    call_type: str
    due_on: date | None = Field(default=None, description="the decision is due on this day "
                                "(set on submission from the call type's deadline)")
    overdue: bool = Field(default=False, description="due_on has passed, no decision yet")
    reviewers: list[str] = Field(default_factory=list, description="visible to operators")
    granted_gpu_hours: float | None = Field(default=None, description="set on acceptance")
    decision_letter: str | None = Field(default=None, description="the letter sent with "
                                        "the decision (reviewers' comments without names)")
    estimate: EstimateOut | None = None
    requested_vs_estimate: float | None = Field(
        default=None, description="requested GPU-hours / estimated GPU-hours (null without "
                                  "an estimate); the planner is good to about ±30 %")

    @classmethod
    def of(cls, p: Proposal, now: datetime,
           reviewers: list[str] | None = None) -> ProposalOut:
        est = EstimateOut.of(p)
        return cls(id=p.id, call=p.call.slug, call_id=p.call_id, project=p.project.slug,
                   project_id=p.project_id, organization=p.project.organization.name,
                   applicant=p.applicant.username, title=p.title, abstract=p.abstract,
                   justification=p.justification, gpu_type=p.gpu_type,
                   requested_gpu_hours=p.requested_gpu_hours, state=p.state,
                   decision_comment=p.decision_comment, created_at=p.created_at,
                   submitted_at=p.submitted_at, decided_at=p.decided_at,
                   withdrawn_at=p.withdrawn_at,
                   withdrawn_by=p.withdrawn_by.username if p.withdrawn_by else None,
                   duration_months=p.duration_months, call_type=p.call.call_type.key,
                   due_on=p.due_on, overdue=is_overdue(p, now.date()),
                   reviewers=reviewers or [], estimate=est,
                   granted_gpu_hours=p.granted_gpu_hours, decision_letter=p.decision_letter,
                   requested_vs_estimate=None if est is None else estimates.requested_vs_estimate(
                       p.requested_gpu_hours, est.gpu_hours))


class ReviewOut(BaseModel):
    id: int
    proposal_id: int
    reviewer: str | None = Field(description="hidden from applicants")
    assigned_at: datetime
    technical_score: int | None
    scientific_score: int | None
    comment: str
    submitted_at: datetime | None
    invited_at: datetime | None = None
    due_on: date | None = Field(default=None, description="answer the invitation by")
    accepted: bool | None = Field(default=None, description="null: not answered yet")
    responded_at: datetime | None = None
    decline_reason: str = ""

    @classmethod
    def of(cls, r: Review, *, show_reviewer: bool) -> ReviewOut:
        return cls(id=r.id, proposal_id=r.proposal_id,
                   reviewer=r.reviewer.username if show_reviewer else None,
                   assigned_at=r.assigned_at, technical_score=r.technical_score,
                   scientific_score=r.scientific_score, comment=r.comment,
                   submitted_at=r.submitted_at, invited_at=r.invited_at, due_on=r.due_on,
                   accepted=r.accepted, responded_at=r.responded_at,
                   decline_reason=r.decline_reason if show_reviewer else "")


# --------------------------------------------------------------------------- awards


class PeriodIn(_In):
    starts_at: datetime
    ends_at: datetime
    gpu_hours: float = Field(ge=0)


class AwardCreate(_In):
    project: Ref
    proposal: DbId | None = None
    gpu_type: str | None = Field(default=None, description="default: the proposal's")
    gpu_hours: float = Field(gt=0)
    starts_at: datetime
    expires_at: datetime | None = Field(default=None, description="default: end of last period")
    carry_over_limit_gpu_hours: float = Field(default=0.0, ge=0)
    period_count: int | None = Field(default=None, ge=1, le=120)
    period_months: int = Field(default=3, ge=1, le=60)
    periods: list[PeriodIn] | None = Field(default=None, min_length=1)
    cluster: str | None = Field(default=None, min_length=1, max_length=32,
                                description="valid on this cluster only (several clusters); "
                                "default: every cluster offering the GPU type")


class PeriodOut(BaseModel):
    id: int
    starts_at: datetime
    ends_at: datetime
    gpu_hours: float


class AwardOut(BaseModel):
    id: int
    project: str
    project_id: int
    proposal_id: int | None
    gpu_type: str
    gpu_hours: float
    starts_at: datetime
    expires_at: datetime
    carry_over_limit_gpu_hours: float
    created_at: datetime
    periods: list[PeriodOut]
    version: int = Field(default=1, description="1 as awarded; +1 per approved change")
    cluster: str | None = Field(default=None, description="None: every cluster")

    @classmethod
    def of(cls, a: Award) -> AwardOut:
        return cls(id=a.id, project=a.project.slug, project_id=a.project_id, cluster=a.cluster,
                   proposal_id=a.proposal_id, gpu_type=a.gpu_type, gpu_hours=a.gpu_hours,
                   starts_at=a.starts_at, expires_at=a.expires_at,
                   carry_over_limit_gpu_hours=a.carry_over_limit_gpu_hours,
                   created_at=a.created_at, version=a.version,
                   periods=[PeriodOut(id=p.id, starts_at=p.starts_at, ends_at=p.ends_at,
                                      gpu_hours=p.gpu_hours) for p in a.periods])


class AwardChangeCreate(_In):
    kind: Literal["extension", "supplement", "early_end"]
    reason: str = Field(min_length=1, max_length=5000, description="why (for the operator)")
    until: datetime | None = Field(default=None, description="the new end (extension; "
                                   "early end, default now)")
    gpu_hours: float | None = Field(default=None, gt=0,
                                    description="the extra GPU-hours (supplement)")


class AwardChangeDecision(_In):
    decision: Literal["approved", "rejected"]
    note: str = Field(min_length=1, max_length=5000, description="for the PI")
    until: datetime | None = Field(default=None, description="grant another end")
    gpu_hours: float | None = Field(default=None, gt=0, description="grant fewer GPU-hours")


class AwardChangeOut(BaseModel):
    id: int
    award_id: int
    project: str
    kind: str
    state: str
    reason: str
    requested_until: datetime | None
    extra_gpu_hours: float | None
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str
    granted_until: datetime | None
    granted_gpu_hours: float | None
    version: int | None

    @classmethod
    def of(cls, c: AwardChange) -> AwardChangeOut:
        return cls(id=c.id, award_id=c.award_id, project=c.award.project.slug, kind=c.kind,
                   state=c.state, reason=c.reason, requested_until=c.requested_until,
                   extra_gpu_hours=c.extra_gpu_hours, requested_by=c.requested_by.username,
                   requested_at=c.requested_at,
                   decided_by=c.decided_by.username if c.decided_by else None,
                   decided_at=c.decided_at, decision_note=c.decision_note,
                   granted_until=c.granted_until, granted_gpu_hours=c.granted_gpu_hours,
                   version=c.version)


class Publication(_In):
    doi: str = Field(min_length=1, max_length=300, description="e.g. 10.1234/abc.5678")
    title: str = Field(min_length=1, max_length=500)


class ReportSubmit(_In):
    summary: str = Field(min_length=1, max_length=20_000,
                         description="results and use of the GPU-hours")
    publications: list[Publication] = Field(default_factory=list, max_length=200)


class ReportReview(_In):
    decision: Literal["accepted", "returned"]
    note: str = Field(default="", max_length=5000, description="required when returned")


class ReportTaskOut(BaseModel):
    id: int
    award_id: int
    project: str
    kind: str
    period_index: int | None = Field(description="the award period (status reports)")
    due_on: date
    state: str
    overdue: bool
    summary: str
    publications: list[dict[str, str]]
    document_name: str | None
    document_bytes: int | None
    document_sha256: str | None
    submitted_at: datetime | None
    reviewed_at: datetime | None
    review_note: str

    @classmethod
    def of(cls, t: ReportTask, today: date) -> ReportTaskOut:
        return cls(id=t.id, award_id=t.award_id, project=t.award.project.slug, kind=t.kind,
                   period_index=t.period_index if t.kind == "status" else None,
                   due_on=t.due_on, state=t.state,
                   overdue=t.state == "open" and t.due_on < today, summary=t.summary,
                   publications=list(t.publications), document_name=t.document_name,
                   document_bytes=t.document_bytes, document_sha256=t.document_sha256,
                   submitted_at=t.submitted_at, reviewed_at=t.reviewed_at,
                   review_note=t.review_note)


class AwardVersionOut(BaseModel):
    version: int
    change_id: int | None
    gpu_hours: float
    expires_at: datetime
    periods: list[list[Any]] = Field(description="[starts_at, ends_at, gpu_hours]")
    created_at: datetime

    @classmethod
    def of(cls, v: AwardVersion) -> AwardVersionOut:
        return cls(version=v.version, change_id=v.change_id, gpu_hours=v.gpu_hours,
                   expires_at=v.expires_at, periods=v.periods, created_at=v.created_at)


# --------------------------------------------------------------------------- pay-per-use


class AccountCreate(_In):
    project: Ref
    credit_limit_eur: float = Field(ge=0)
    prices: dict[str, float] = Field(min_length=1, description="GPU type -> EUR per GPU-hour")


class AccountUpdate(_In):
    credit_limit_eur: float | None = Field(default=None, ge=0)
    prices: dict[str, float] | None = None
    is_active: bool | None = None


class AccountOut(BaseModel):
    id: int
    project: str
    project_id: int
    credit_limit_eur: float
    is_active: bool
    prices: dict[str, float] = Field(description="GPU type -> EUR per GPU-hour")
    created_at: datetime

    @classmethod
    def of(cls, a: PayPerUseAccount) -> AccountOut:
        return cls(id=a.id, project=a.project.slug, project_id=a.project_id,
                   credit_limit_eur=a.credit_limit_eur, is_active=a.is_active,
                   prices={p.gpu_type: p.eur_per_gpu_hour for p in a.prices},
                   created_at=a.created_at)


# --------------------------------------------------------------------------- audit


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    changes: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(id=e.id, at=e.at, actor=e.actor, action=e.action, entity=e.entity,
                   entity_id=e.entity_id, changes=dict(e.changes or {}))
