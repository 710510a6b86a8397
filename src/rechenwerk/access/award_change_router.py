"""REST API of award changes (``/api/v1/awards/{id}/changes``, ``/api/v1/award-changes``)
and award versions. Thin: the rules are ``access.award_changes``'."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from rechenwerk.access import award_changes, awards, paging
from rechenwerk.access import schemas as s
from rechenwerk.access.validation import MAX_ID, MIN_ID
from rechenwerk.api.deps import CurrentUser, DbSession, Now, Operator, settings_of

router = APIRouter(prefix="/api/v1", tags=["access"])

Limit = Query(50, ge=1, le=paging.MAX_LIMIT, description="page size")
Offset = Query(0, ge=0, description="items to skip")


@router.post("/awards/{award_id}/changes", response_model=s.AwardChangeOut,
             status_code=201, summary="Ask for an extension, a supplement or an early end "
                                      "(PI of the project)")
def request_change(award_id: int, body: s.AwardChangeCreate, session: DbSession,
                   user: CurrentUser, now: Now) -> s.AwardChangeOut:
    award = awards.visible_award(session, user, award_id)
    change = award_changes.request_change(
        session, user, award, kind=body.kind, reason=body.reason, until=body.until,
        extra_gpu_hours=body.gpu_hours, now=now)
    return s.AwardChangeOut.of(change)


@router.get("/awards/{award_id}/versions", response_model=list[s.AwardVersionOut],
            summary="The award as awarded and after each approved change")
def award_versions(award_id: int, session: DbSession,
                   user: CurrentUser) -> list[s.AwardVersionOut]:
    award = awards.visible_award(session, user, award_id)
    return [s.AwardVersionOut.of(v) for v in award_changes.award_versions(session, award)]


@router.get("/award-changes", response_model=s.PageOut[s.AwardChangeOut],
            summary="Change requests of awards I may see (operators: all)")
def list_changes(session: DbSession, user: CurrentUser,
                 award: int | None = Query(None, ge=MIN_ID, le=MAX_ID,
                                           description="one award's requests"),
                 state: str | None = Query(None, description="requested, approved, "
                                           "rejected or withdrawn"),
                 limit: int = Limit, offset: int = Offset) -> s.PageOut[s.AwardChangeOut]:
    if award is not None:
        awards.visible_award(session, user, award)
    page = award_changes.list_changes(session, user, award_id=award, state=state,
                                      limit=limit, offset=offset)
    return s.page_out(page, [s.AwardChangeOut.of(c) for c in page.items])


@router.get("/award-changes/{change_id}", response_model=s.AwardChangeOut)
def show_change(change_id: int, session: DbSession, user: CurrentUser) -> s.AwardChangeOut:
    return s.AwardChangeOut.of(award_changes.visible_change(session, user, change_id))


@router.post("/award-changes/{change_id}/decision", response_model=s.AwardChangeOut,
             summary="Approve (possibly granting less) or reject, with a note (operators)")
def decide_change(change_id: int, body: s.AwardChangeDecision, request: Request,
                  session: DbSession, user: Operator, now: Now) -> s.AwardChangeOut:
    change = award_changes.visible_change(session, user, change_id)
    award_changes.decide_change(
        session, user, change, decision=body.decision, note=body.note, until=body.until,
        gpu_hours=body.gpu_hours,
        final_report_months=settings_of(request).final_report_months, now=now)
    return s.AwardChangeOut.of(change)


@router.post("/award-changes/{change_id}/withdraw", response_model=s.AwardChangeOut,
             summary="Take an open request back (PI of the project)")
def withdraw_change(change_id: int, session: DbSession, user: CurrentUser,
                    now: Now) -> s.AwardChangeOut:
    change = award_changes.visible_change(session, user, change_id)
    award_changes.withdraw_change(session, user, change, now=now)
    return s.AwardChangeOut.of(change)
