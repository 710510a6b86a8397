"""A proposal's training-compute estimate (access service), on SQLite and PostgreSQL:
attached at creation, validated by the planner with errors under ``estimate.<field>``,
the GPU type matched against the proposal's, replaced or removed while a draft (audited),
refused after submission like every edit, and the request/estimate ratio."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access import estimates
from rechenwerk.access.models import AuditEntry, Proposal
from rechenwerk.access.proposals import create_proposal, submit_proposal, update_proposal
from rechenwerk.errors import Conflict, InvalidInput
from rechenwerk.planning.schemas import estimate_from_inputs

LATER = T0 + timedelta(hours=1)
INPUTS = {"params": 7e9, "tokens": 1e11, "gpu": "A100-80GB", "gpus": 64}


@pytest.fixture
def w(session: Session) -> dict[str, Any]:
    sme = make_org(session, kind="sme")
    pi = make_user(session, username="pia", org=sme)
    project = make_project(session, pi=pi)
    call = make_call(session, access_mode="innovation", max_gpu_hours=100_000)
    return {"pi": pi, "project": project, "call": call}


def _draft(session: Session, w: dict[str, Any], **kw: Any) -> Proposal:
    args: dict[str, Any] = {"title": "Pre-training", "gpu_type": "A100-80GB",
                            "requested_gpu_hours": 20_000}
    args.update(kw)
    return create_proposal(session, w["pi"], call=w["call"], project=w["project"],
                           now=T0, **args)


def _audit(session: Session, p: Proposal, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.entity == "proposal", AuditEntry.entity_id == str(p.id),
        AuditEntry.action == action).order_by(AuditEntry.id)))


def test_estimate_is_computed_and_stored_with_the_proposal(session: Session,
                                                            w: dict[str, Any]) -> None:
    p = _draft(session, w, estimate=INPUTS)
    session.commit()
    session.expire_all()
    p = session.get(Proposal, p.id)
    assert p is not None
    expected = estimate_from_inputs(INPUTS).to_dict()
    assert p.estimate_inputs == INPUTS  # what was given, defaults not frozen in
    assert p.estimate_result == expected  # the JSON round trip keeps every number
    assert p.estimate_attached_at == T0
    entry = _audit(session, p, "proposal.create")[0]
    assert entry.changes["estimate"] == {"inputs": INPUTS, "gpu_hours": expected["gpu_hours"]}
    # A plain proposal carries none.
    plain = _draft(session, w)
    assert (plain.estimate_inputs, plain.estimate_result, plain.estimate_attached_at) == (
        None, None, None)


def test_aliases_are_stored_canonical_and_strings_as_numbers(session: Session,
                                                             w: dict[str, Any]) -> None:
    p = _draft(session, w, gpu_type="H100", estimate={"params": "7e9", "gpu": "h100",
                                                      "gpus": "64", "mfu": 0.35})
    assert p.gpu_type == "H100-SXM"
    assert p.estimate_inputs == {"params": 7e9, "gpu": "H100-SXM", "gpus": 64, "mfu": 0.35}
    assert p.estimate_result is not None
    assert p.estimate_result["assumptions"]["mfu"] == 0.35
    assert p.estimate_result["model"]["tokens_source"].startswith("compute-optimal")


@pytest.mark.parametrize(("inputs", "field", "words"), [
    ({**INPUTS, "gpu": "Z80"}, "estimate.gpu", "unknown GPU type"),
    ({**INPUTS, "gpus": 0}, "estimate.gpus", ">= 1"),
    ({"tokens": 1e11, "gpu": "A100-80GB", "gpus": 8}, "estimate.params", "required"),
    ({**INPUTS, "mfu": 1.5}, "estimate.mfu", "[0.001, 1]"),
    ({**INPUTS, "colour": "red"}, "estimate.colour", "Extra inputs"),
])
def test_bad_estimate_names_the_field_and_creates_nothing(
        session: Session, w: dict[str, Any], inputs: dict[str, Any], field: str,
        words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _draft(session, w, estimate=inputs)
    assert err.value.field == field and words in str(err.value)
    assert err.value.issues[0].path == field
    assert session.scalars(select(Proposal)).first() is None


def test_estimate_on_another_gpu_type_is_refused(session: Session, w: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as err:
        _draft(session, w, gpu_type="H100", estimate=INPUTS)
    assert err.value.field == "estimate.gpu"
    assert "estimate is for A100-80GB but the proposal asks for H100-SXM" in str(err.value)
    assert session.scalars(select(Proposal)).first() is None


def test_draft_replaces_and_removes_the_estimate_audited(session: Session,
                                                         w: dict[str, Any]) -> None:
    p = _draft(session, w, estimate=INPUTS)
    first = p.estimate_result
    assert first is not None
    bigger = {**INPUTS, "tokens": 2e11}
    update_proposal(session, w["pi"], p, estimate=bigger, now=LATER)
    assert p.estimate_inputs == bigger and p.estimate_attached_at == LATER
    assert p.estimate_result is not None
    assert p.estimate_result["gpu_hours"] == pytest.approx(2 * first["gpu_hours"], rel=1e-3)
    second_hours = p.estimate_result["gpu_hours"]
    # The same inputs again change nothing and record nothing.
    update_proposal(session, w["pi"], p, estimate=dict(bigger), now=LATER + LATER.resolution)
    assert p.estimate_attached_at == LATER
    update_proposal(session, w["pi"], p, remove_estimate=True, now=LATER)
    assert (p.estimate_inputs, p.estimate_result, p.estimate_attached_at) == (None, None, None)
    entries = _audit(session, p, "proposal.update")
    assert [list(e.changes) for e in entries] == [["estimate"], ["estimate"]]
    assert entries[0].changes["estimate"] == [
        {"inputs": INPUTS, "gpu_hours": first["gpu_hours"]},
        {"inputs": bigger, "gpu_hours": second_hours}]
    assert entries[1].changes["estimate"][1] is None
    # Removing what is not there is no change either.
    update_proposal(session, w["pi"], p, remove_estimate=True, now=LATER)
    assert len(_audit(session, p, "proposal.update")) == 2


def test_edit_checks_the_estimate_with_the_other_fields(session: Session,
                                                        w: dict[str, Any]) -> None:
    p = _draft(session, w, estimate=INPUTS)
    # A new GPU type without a new estimate would compare hours of different hardware.
    with pytest.raises(InvalidInput) as err:
        update_proposal(session, w["pi"], p, gpu_type="H100", now=LATER)
    assert err.value.field == "gpu_type" and "attached estimate is for A100-80GB" in str(
        err.value)
    # Every problem at once, nothing changed.
    with pytest.raises(InvalidInput) as err:
        update_proposal(session, w["pi"], p, title=" ", estimate={**INPUTS, "gpus": -1},
                        now=LATER)
    assert [i.path for i in err.value.issues] == ["title", "estimate.gpus"]
    assert p.title == "Pre-training" and p.estimate_inputs == INPUTS
    with pytest.raises(InvalidInput, match="not both"):
        update_proposal(session, w["pi"], p, estimate=INPUTS, remove_estimate=True,
                        now=LATER)
    # GPU type and estimate changed together are fine.
    update_proposal(session, w["pi"], p, gpu_type="H100",
                    estimate={**INPUTS, "gpu": "H100"}, now=LATER)
    assert p.gpu_type == "H100-SXM" and p.estimate_inputs == {**INPUTS, "gpu": "H100-SXM"}
    # Or the estimate dropped with the GPU change.
    update_proposal(session, w["pi"], p, gpu_type="A100-80GB", remove_estimate=True,
                    now=LATER)
    assert p.gpu_type == "A100-80GB" and p.estimate_inputs is None


def test_estimate_cannot_change_after_submission(session: Session, w: dict[str, Any]) -> None:
    p = _draft(session, w, estimate=INPUTS)
    submit_proposal(session, w["pi"], p, now=T0)
    for kw in ({"estimate": {**INPUTS, "gpus": 128}}, {"remove_estimate": True}):
        with pytest.raises(Conflict, match="only drafts can be edited"):
            update_proposal(session, w["pi"], p, now=LATER, **kw)
    assert p.estimate_inputs == INPUTS


def test_ratio_and_its_check() -> None:
    assert estimates.requested_vs_estimate(1300, 1000) == 1.3
    assert estimates.request_check(estimates.ratio(1300, 1000)) == "ok"
    assert estimates.request_check(estimates.ratio(1301, 1000)) == "over"
    assert estimates.request_check(estimates.ratio(500, 1000)) == "ok"
    assert estimates.request_check(estimates.ratio(499, 1000)) == "under"
    assert estimates.ratio(10, 0) is None and estimates.request_check(None) == "ok"
    result = estimate_from_inputs(INPUTS).to_dict()
    s = estimates.summary(INPUTS, result, 2 * result["gpu_hours"])
    assert (s["requested_vs_estimate"], s["request_check"]) == (2.0, "over")
    assert (s["gpu"], s["gpus"], s["memory_feasible"]) == ("A100-80GB", 64, True)
    assert s["energy_mwh"] == result["energy_mwh"] and s["co2_t"] == result["co2_t"]


def test_planning_does_not_import_access() -> None:
    """The dependency is one-way: access -> planning."""
    root = Path(__file__).resolve().parents[2] / "src" / "rechenwerk" / "planning"
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("rechenwerk.access") for n in names), path.name
