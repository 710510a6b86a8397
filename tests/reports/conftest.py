"""Fixtures of the report tests (builders in ``report_data.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from report_data import JAN, Centre, add_job, add_usage
from sqlalchemy.orm import Session

from factories import make_award, make_call, make_org, make_project, make_user
from rechenwerk.access.models import Proposal


@pytest.fixture
def centre(session: Session) -> Centre:
    uni = make_org(session, name="Uni Heidelberg", kind="university", country="DE")
    sme = make_org(session, name="Tiny AI SARL", kind="sme", country="FR")
    pi_a = make_user(session, username="pia", org=uni)
    pi_b = make_user(session, username="pib", org=sme)
    op = make_user(session, username="op", org=uni, operator=True)
    alpha = make_project(session, pi=pi_a, slug="alpha")
    beta = make_project(session, pi=pi_b, slug="beta")
    call = make_call(session, slug="research-1", access_mode="research")
    prop = Proposal(call_id=call.id, project_id=alpha.id, applicant_user_id=pi_a.id,
                    title="LLM", abstract="", justification="", gpu_type="A100-80GB",
                    requested_gpu_hours=100.0, state="accepted", decision_comment="",
                    created_at=JAN)
    session.add(prop)
    session.flush()
    award_a = make_award(session, alpha, gpu_hours=100.0)
    award_a.proposal_id = prop.id
    award_b = make_award(session, beta, gpu_hours=50.0)
    pa, pb = award_a.periods[0].id, award_b.periods[0].id
    # alpha: 10 GPU-h in January (A100), 20 GPU-h in February (H100); beta: 5 in January.
    add_usage(session, alpha, start=JAN + timedelta(days=4), hours=10.0, gpus=2, period_id=pa)
    add_usage(session, alpha, start=JAN + timedelta(days=33), hours=20.0, gpus=4,
              gpu_type="H100-SXM", period_id=pa)
    add_usage(session, beta, start=JAN + timedelta(days=19), hours=5.0, gpus=1, period_id=pb)
    # outside the test ranges
    add_usage(session, beta, start=JAN - timedelta(days=40), hours=99.0, gpus=1, period_id=pb)
    # waits: alpha normal 1-GPU jobs wait 1, 2, 3 h; a 16-GPU high job waits 10 h;
    # beta: one pending job (no start) and one 8-GPU normal job waiting 4 h.
    for w in (1.0, 2.0, 3.0):
        add_job(session, alpha, pi_a, submitted=JAN + timedelta(days=2), wait_h=w)
    add_job(session, alpha, pi_a, submitted=JAN + timedelta(days=3), wait_h=10.0, gpus=16,
            qos="high")
    add_job(session, beta, pi_b, submitted=JAN + timedelta(days=3), wait_h=None,
            state="pending")
    add_job(session, beta, pi_b, submitted=JAN + timedelta(days=5), wait_h=4.0, gpus=8)
    session.commit()
    return Centre(alpha, beta, pi_a, pi_b, op)
