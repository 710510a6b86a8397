"""Demo data for ``rechenwerk admin demo``: a small European centre with organisations of
every kind, users in every role, projects, open calls, reviewed proposals and awards in
quarterly periods, a pay-per-use account and a few support requests. Built through the
services, so it is validated and audited like real input.

Passwords are ``<username>-demo`` (documented in docs/access.md; demo only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.accounts import create_account
from rechenwerk.access.audit import record
from rechenwerk.access.aup import accept_aup, publish_aup
from rechenwerk.access.awards import create_award
from rechenwerk.access.call_type_rules import EUROHPC_TYPES
from rechenwerk.access.call_types import ensure_call_types
from rechenwerk.access.calls import create_call
from rechenwerk.access.models import Call, Organization, User
from rechenwerk.access.organizations import create_organization
from rechenwerk.access.projects import add_member, create_project
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import confirm_ranking, record_assessment, submit_reply
from rechenwerk.access.reviews import assign_reviewer, respond_to_invitation, submit_review
from rechenwerk.access.security import create_token
from rechenwerk.access.users import create_user

ORGANIZATIONS: list[tuple[str, str, str]] = [
    ("Rechenwerk Compute Centre", "public_agency", "DE"),
    ("Agencia Estatal de Datos Abiertos", "public_agency", "ES"),
    ("Technische Universität Nordstadt", "university", "DE"),
    ("Universidad de Valdemar", "university", "ES"),
    ("Elbtal Institute for Computational Science", "research_institute", "DE"),
    ("Instituto Atlântico de Física", "research_institute", "PT"),
    ("Nordlicht AI GmbH", "sme", "DE"),
    ("Polderdata B.V.", "sme", "NL"),
    ("Lumen Robotics SAS", "startup", "FR"),
    ("Fjord Vision AB", "startup", "SE"),
    ("Alpenwerk Industries AG", "enterprise", "AT"),
    ("Mediterranea Energia S.p.A.", "enterprise", "IT"),
]

# username, full name, organisation, operator, reviewer
USERS: list[tuple[str, str, str, bool, bool]] = [
    ("operator", "Olga Operator", "Rechenwerk Compute Centre", True, False),
    ("lucia", "Lucía Fernández", "Universidad de Valdemar", False, True),
    ("henrik", "Henrik Lindqvist", "Elbtal Institute for Computational Science", False, True),
    ("margot", "Margarida Sousa", "Instituto Atlântico de Física", False, True),
    ("greta", "Greta Hansen", "Nordlicht AI GmbH", False, False),
    ("jonas", "Jonas Weber", "Nordlicht AI GmbH", False, False),
    ("amelie", "Amélie Laurent", "Lumen Robotics SAS", False, False),
    ("jan", "Jan Kowalski", "Technische Universität Nordstadt", False, False),
    ("pieter", "Pieter de Vries", "Technische Universität Nordstadt", False, False),
    ("clara", "Clara Rossi", "Technische Universität Nordstadt", False, False),
    ("sofia", "Sofia Gruber", "Alpenwerk Industries AG", False, False),
]

DEMO_GPU_TYPE = "A100-80GB"  # the local executor's default inventory
DEMO_AUP = """Acceptable-use policy of the demo centre (version 1)

1. Use the centre's GPUs only for the work of the projects you are a member of.
2. Keep your credentials (password, API tokens) to yourself; revoke a token you lost.
3. Do not try to reach other projects' data or to circumvent the centre's limits.
4. Acknowledge the centre in publications that used its resources.
5. Operators may suspend accounts that break these rules."""


def demo_password(username: str) -> str:
    return f"{username}-demo"


@dataclass
class DemoResult:
    tokens: dict[str, str] = field(default_factory=dict)  # username -> API token secret
    organizations: int = 0
    users: int = 0
    projects: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    proposals: int = 0
    awards: int = 0
    support_requests: int = 0


def is_empty(session: Session) -> bool:
    orgs = session.scalar(select(func.count()).select_from(Organization)) or 0
    users = session.scalar(select(func.count()).select_from(User)) or 0
    return orgs == 0 and users == 0


def quarter_start(now: datetime) -> datetime:
    month = 3 * ((now.month - 1) // 3) + 1
    return datetime(now.year, month, 1, tzinfo=UTC)


def load_demo(session: Session, *, now: datetime) -> DemoResult:
    """Create the demo centre in ``session`` (the caller commits). Raises Conflict when any
    of the demo names exists already."""
    out = DemoResult()
    # Bootstrap: the centre's own organisation and its operator (no actor yet).
    name, kind, country = ORGANIZATIONS[0]
    centre = Organization(name=name, kind=kind, country=country, created_at=now)
    session.add(centre)
    session.flush()
    record(session, None, "organization.create", "organization", centre.id,
           {"name": name, "kind": kind, "country": country}, at=now)
    op = create_user(session, None, username="operator",
                     email="operator@demo.rechenwerk.example.eu", full_name="Olga Operator",
                     organization=centre.id, is_operator=True,
                     password=demo_password("operator"), now=now)
    orgs: dict[str, Organization] = {name: centre}
    for name, kind, country in ORGANIZATIONS[1:]:
        orgs[name] = create_organization(session, op, name=name, kind=kind,
                                         country=country, now=now)
    out.organizations = len(orgs)
    users = {"operator": op}
    for username, full_name, org_name, is_operator, is_reviewer in USERS:
        if username in users:
            continue
        users[username] = create_user(
            session, op, username=username, email=f"{username}@demo.rechenwerk.example.eu",
            full_name=full_name, organization=orgs[org_name].id, is_operator=is_operator,
            is_reviewer=is_reviewer, password=demo_password(username), now=now)
    out.users = len(users)

    # Projects
    projects = {
        "nordlicht-llm": create_project(
            session, users["greta"], slug="nordlicht-llm", now=now,
            field_of_science="1.2",  # OECD FORD
            title="Domain-adapted German-language LLM for industrial maintenance"),
        "lumen-vision": create_project(
            session, users["amelie"], slug="lumen-vision", now=now,
            field_of_science="2.2",  # OECD FORD
            title="Vision foundation model for warehouse robots"),
        "nordstadt-climate": create_project(
            session, users["jan"], slug="nordstadt-climate", now=now,
            field_of_science="1.5",  # OECD FORD
            title="Machine-learned emulators for regional climate downscaling"),
        "alpenwerk-cfd": create_project(
            session, users["sofia"], slug="alpenwerk-cfd", now=now,
            field_of_science="2.3",  # OECD FORD
            title="Neural surrogate models for turbine CFD"),
    }
    out.projects = list(projects)
    add_member(session, users["greta"], projects["nordlicht-llm"], username="jonas",
               role="member", now=now)
    add_member(session, users["jan"], projects["nordstadt-climate"], username="pieter",
               role="member", now=now)
    add_member(session, users["jan"], projects["nordstadt-climate"], username="clara",
               role="viewer", now=now)

    # Call types: the EuroHPC AI Factory and classic access modes, as published.
    ensure_call_types(session, op, EUROHPC_TYPES, now=now)
    # Calls
    q0 = quarter_start(now)
    opened = now - timedelta(days=30)
    innovation = create_call(
        session, op, slug=f"innovation-{now.year}", access_mode="innovation", now=now,
        title=f"AI Innovation Access {now.year} (SMEs and startups)",
        description="GPU-hours for European SMEs and startups developing AI products.",
        opens_at=opened, closes_at=now + timedelta(days=90), max_gpu_hours=20_000)
    research = create_call(
        session, op, slug=f"research-{now.year}", access_mode="research", now=now,
        title=f"Open Research Call {now.year}",
        description="Peer-reviewed access for universities and research institutes.",
        opens_at=opened, closes_at=now + timedelta(days=60), max_gpu_hours=100_000)
    fast = create_call(
        session, op, slug="fast-lane", access_mode="fast_lane", call_type="fast-lane",
        now=now, title="Fast Lane: up to 2,000 GPU-hours, decided within 4 working days",
        opens_at=opened, closes_at=now + timedelta(days=365), max_gpu_hours=2_000)
    playground = create_call(
        session, op, slug="playground", access_mode="innovation", call_type="playground",
        now=now, title="AI Factory Playground: first GPU-hours for startups and SMEs",
        description="Free entry-level access; short application, access within 2 "
                    "working days.",
        opens_at=opened, closes_at=now + timedelta(days=365), max_gpu_hours=1_000)
    large = create_call(
        session, op, slug=f"large-scale-{now.year}", access_mode="research",
        call_type="large-scale", now=now,
        title=f"AI Factory Large Scale {now.year}: over 50,000 GPU-hours",
        description="Full peer review after each monthly cut-off.",
        opens_at=opened, closes_at=now + timedelta(days=180), max_gpu_hours=500_000)
    out.calls = [innovation.slug, research.slug, fast.slug, playground.slug, large.slug]

    def accepted(project: str, call_: Call, applicant: str, title: str, hours: float,
                 reviewer: str, scores: tuple[int, int], periods: int) -> None:
        pi = users[applicant]
        p = create_proposal(session, pi, call=call_, project=projects[project], title=title,
                            gpu_type=DEMO_GPU_TYPE, requested_gpu_hours=hours, now=now,
                            abstract=f"{title}.", justification="See the work plan.")
        submit_proposal(session, pi, p, now=now)
        for step in ("eligibility", "technical"):
            record_assessment(session, op, p, step=step, outcome="pass", now=now,
                              note="Checked by the site team.")
        assign_reviewer(session, op, p, reviewer=reviewer, now=now)
        respond_to_invitation(session, users[reviewer], p, accept=True, now=now)
        submit_review(session, users[reviewer], p, technical_score=scores[0],
                      scientific_score=scores[1], comment="Feasible and well planned.",
                      now=now)
        submit_reply(session, pi, p, now=now,
                     text="Thank you; we will publish the data pipeline as suggested.")
        confirm_ranking(session, op, call_, now=now)
        decide_proposal(session, op, p, decision="accepted", now=now,
                        comment="Accepted in full.")
        create_award(session, op, project=projects[project], proposal=p, gpu_hours=hours,
                     starts_at=q0, period_count=periods, period_months=3,
                     carry_over_limit_gpu_hours=round(hours / periods * 0.2, 1), now=now)
        out.proposals += 1
        out.awards += 1

    accepted("nordlicht-llm", innovation, "greta",
             "Continued pre-training of a 7B model on maintenance manuals", 5_000, "lucia",
             (4, 4), 2)
    accepted("nordstadt-climate", research, "jan",
             "Learning km-scale precipitation from reanalysis", 20_000, "margot", (5, 4), 4)
    # One proposal waiting for its reviewer, one draft.
    p = create_proposal(session, users["amelie"], call=innovation,
                        project=projects["lumen-vision"],
                        title="Self-supervised pre-training on warehouse video",
                        gpu_type=DEMO_GPU_TYPE, requested_gpu_hours=8_000, now=now)
    submit_proposal(session, users["amelie"], p, now=now)
    assign_reviewer(session, op, p, reviewer="henrik", now=now)
    create_proposal(session, users["amelie"], call=fast, project=projects["lumen-vision"],
                    title="Ablation runs for the data pipeline", gpu_type=DEMO_GPU_TYPE,
                    requested_gpu_hours=1_500, duration_months=2, now=now)
    out.proposals += 2

    create_account(session, op, project=projects["alpenwerk-cfd"], credit_limit_eur=25_000,
                   prices={"A100-80GB": 1.60, "H100-SXM": 2.80}, now=now)

    out.support_requests = _support_requests(session, users, now)

    # The demo's users have accepted its AUP; a user created later must accept it first.
    aup = publish_aup(session, op, DEMO_AUP, now=now)
    for username, user in users.items():
        accept_aup(session, user, aup.version, now=now)
        _, secret = create_token(session, user, name="demo", now=now, actor=op)
        out.tokens[username] = secret
    return out


def _support_requests(session: Session, users: dict[str, User], now: datetime) -> int:
    """Three support requests in three states, opened over the last days so that the
    support report has response times."""
    from rechenwerk.support import service as support

    op, h = users["operator"], timedelta(hours=1)
    scaling = support.open_request(
        session, users["jonas"], project="nordlicht-llm", kind="porting", now=now - 50 * h,
        subject="NCCL all-reduce stalls beyond 4 nodes",
        body="Our 7B pre-training runs fine on 4 nodes (32 GPUs) but stalls at the first "
             "all-reduce on 8 nodes. NCCL_DEBUG=INFO shows it waiting on the IB "
             "transport. Job 'pretrain-8n' reproduces it.")
    support.assign(session, op, scaling, assignee=None, now=now - 49 * h)
    support.reply(session, op, scaling, now=now - 46 * h,
                  body="Nodes 5-8 sit on a second leaf switch. Please set "
                       "NCCL_IB_HCA=mlx5_0,mlx5_1 and NCCL_CROSS_NIC=1 and run the "
                       "allreduce_check recipe on 8 nodes; send us its output.")
    support.open_request(
        session, users["pieter"], project="nordstadt-climate", kind="data",
        now=now - 5 * h, subject="Staging 30 TB of ERA5 reanalysis",
        body="We need ERA5 hourly fields 1990-2020 (about 30 TB) on the project storage "
             "before our training runs start next month. Is there a data mover we "
             "should use, or can you stage it from the Copernicus mirror?")
    onboarding = support.open_request(
        session, users["amelie"], project="lumen-vision", kind="onboarding",
        now=now - 75 * h, subject="First steps for two new team members",
        body="Two students join the project next week. What do they need to do before "
             "they can submit jobs?")
    support.reply(session, op, onboarding, now=now - 72 * h,
                  body="Add them as members of lumen-vision (Project page, Members); they "
                       "accept the acceptable-use policy at their first login and can "
                       "then submit jobs. docs/jobs.md has a first job spec.")
    support.close(session, users["amelie"], onboarding, now=now - 70 * h,
                  comment="Thanks, both are set up.")
    return 3
