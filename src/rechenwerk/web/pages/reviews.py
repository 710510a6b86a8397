"""Reviewers: the proposals assigned to them, the review form, the conflict of interest
(organisation and project membership) shown beside each proposal."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access import reviews
from rechenwerk.access.models import Proposal, ProposalState, Review, User
from rechenwerk.access.proposals import visible_proposal
from rechenwerk.access.reviews import submit_review
from rechenwerk.api.deps import get_now, get_session, rollback_request, settings_of
from rechenwerk.errors import NotFound, RechenwerkError
from rechenwerk.web.deps import form_data, reviewer_user
from rechenwerk.web.forms import FormErrors, errors_from, number, text
from rechenwerk.web.pages.proposals import estimate_view
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect, set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def conflict_of_interest(db: Session, reviewer: User, proposal: Proposal) -> dict[str, Any]:
    """What the reviewer should know about their relation to the applicant, by the one
    rule of access/reviews.py; with a conflict the form is not shown."""
    coi = reviews.conflict_of_interest(db, reviewer, proposal)
    if coi is not None:
        sentence = coi.sentence()
        verdict = (f"Conflict: {sentence[0].upper()}{sentence[1:]}. Decline the review: "
                   "ask an operator to reassign it to another reviewer.")
    else:
        verdict = "No conflict of interest recorded."
    return {
        "reviewer_org": reviewer.organization.name if reviewer.organization else "none",
        "applicant_org": proposal.project.organization.name,
        "conflict": coi is not None, "verdict": verdict,
    }


@router.get("/reviews")
def review_list(
    request: Request, user: User = Depends(reviewer_user), db: Session = Depends(get_session),
) -> Response:
    rows = db.execute(
        select(Review, Proposal).join(Proposal, Review.proposal_id == Proposal.id)
        .where(Review.reviewer_user_id == user.id,
               # a withdrawn proposal's review is no longer requested: off the list
               Proposal.state != ProposalState.WITHDRAWN.value)
        .order_by(Review.submitted_at.is_not(None), Review.assigned_at.desc())
    ).all()
    items = [{"review": r, "p": p, "coi": conflict_of_interest(db, user, p)} for r, p in rows]
    return render(request, "reviews/list.html", {
        "title": "Reviews", "section": "reviews", "items": items,
        "open": sum(1 for r, _ in rows if r.submitted_at is None),
    })


def _own_review(db: Session, user: User, proposal_id: int) -> tuple[Proposal, Review]:
    proposal = visible_proposal(db, user, proposal_id)
    review = db.scalars(select(Review).where(Review.proposal_id == proposal.id,
                                             Review.reviewer_user_id == user.id)).first()
    if review is None:
        raise NotFound(f"you are not assigned to review proposal {proposal_id}",
                       hint="Your assigned proposals are listed under Reviews.")
    return proposal, review


def _form_page(request: Request, db: Session, user: User, proposal: Proposal, review: Review,
               form: dict[str, str], errors: FormErrors, status_code: int = 200) -> Response:
    return render(request, "reviews/form.html", {
        "title": f"Review proposal {proposal.id}", "section": "reviews", "p": proposal,
        "review": review, "coi": conflict_of_interest(db, user, proposal), "form": form,
        "est": estimate_view(proposal),
        "errors": errors, "score_options": [("", "choose…")] + [(str(i), str(i)) for i in
                                                                 range(5, 0, -1)],
    }, status_code=status_code)


@router.get("/reviews/{proposal_id}")
def review_form(
    request: Request, proposal_id: int, user: User = Depends(reviewer_user),
    db: Session = Depends(get_session),
) -> Response:
    proposal, review = _own_review(db, user, proposal_id)
    form = {"technical_score": str(review.technical_score or ""),
            "scientific_score": str(review.scientific_score or ""), "comment": review.comment}
    return _form_page(request, db, user, proposal, review, form, FormErrors())


@router.post("/reviews/{proposal_id}/invitation")
def review_invitation(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(reviewer_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal, review = _own_review(db, user, proposal_id)
    accept = text(form, "action") == "accept"
    try:
        reviews.respond_to_invitation(db, user, proposal, accept=accept,
                                      reason=text(form, "reason"), now=now)
    except RechenwerkError as exc:
        rollback_request(request)
        proposal, review = _own_review(db, user, proposal_id)
        return _form_page(request, db, user, proposal, review, form,
                          errors_from(exc, fields={"reason"}), exc.http_status)
    response = RedirectResponse(f"/reviews/{proposal.id}" if accept else "/reviews",
                                status_code=303)
    set_flash(response, settings_of(request), "success",
              f"You review proposal {proposal.id}." if accept
              else f"You declined reviewing proposal {proposal.id}.")
    return response


@router.post("/reviews/{proposal_id}")
def review_submit(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(reviewer_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal, review = _own_review(db, user, proposal_id)
    errors = FormErrors()
    status = 422
    if proposal.state == ProposalState.WITHDRAWN.value:
        # the scores do not matter any more: say so, not "score is required"
        tech = sci = 0
    else:
        tech = number(form, "technical_score", errors, label="Technical score", integer=True)
        sci = number(form, "scientific_score", errors, label="Scientific score", integer=True)
    if not errors:
        try:
            submit_review(db, user, proposal, technical_score=int(tech),
                          scientific_score=int(sci), comment=text(form, "comment"),
                          now=now)
        except RechenwerkError as exc:
            rollback_request(request)
            errors = errors_from(exc, fields={"technical_score", "scientific_score",
                                              "comment"})
            status = exc.http_status
            proposal, review = _own_review(db, user, proposal_id)
    if errors:
        return _form_page(request, db, user, proposal, review, form, errors, status)
    return flash_redirect(request, "/reviews",
                          f"Review of proposal {proposal.id} submitted. Thank you.")
