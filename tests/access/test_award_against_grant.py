"""An award for a decided proposal gives at most what the decision granted (more
GPU-hours later are a supplement), and the portal's award form starts from the grant."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.awards import create_award
from rechenwerk.access.models import Proposal
from rechenwerk.access.proposals import create_proposal
from rechenwerk.errors import InvalidInput


def _decided(session: Session, granted: float) -> tuple[Any, Any, Proposal]:
    op = make_user(session, operator=True)
    pi = make_user(session, org=make_org(session, kind="university"))
    project = make_project(session, pi=pi)
    p = create_proposal(session, pi, call=make_call(session), project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=10_000, now=T0)
    p.state, p.granted_gpu_hours = "accepted", granted  # as decide_proposal leaves it
    session.flush()
    return op, project, p


def test_an_award_gives_at_most_the_grant(session: Session) -> None:
    op, project, p = _decided(session, granted=6000)
    with pytest.raises(InvalidInput, match="exceed the 6000 GPU-hours the decision") as err:
        create_award(session, op, project=project, proposal=p, gpu_hours=10_000,
                     starts_at=T0, now=T0)
    assert err.value.field == "gpu_hours" and "supplement" in (err.value.hint or "")
    award = create_award(session, op, project=project, proposal=p, gpu_hours=6000,
                         starts_at=T0, now=T0)
    assert award.gpu_hours == 6000
