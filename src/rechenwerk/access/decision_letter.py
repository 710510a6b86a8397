"""The decision letter: the text the applicant receives with the decision, rendered from a
small template (the proposal, the decision, the granted GPU-hours, the reviewers'
comments without their names, the failed check's note, the operator's note).

Pure: the caller hands in what the letter says; no database, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

LETTER = Template("""\
Decision on proposal $proposal_id: $title
Project $project ($organization), call $call

Decision: $decision
$grant
Reviewers' comments:
$comments
$check
Note from the centre:
$note
""")


@dataclass(frozen=True, slots=True)
class ReviewComment:
    technical_score: int | None
    scientific_score: int | None
    comment: str


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def render_letter(*, proposal_id: int, title: str, project: str, organization: str,
                  call: str, decision: str, requested_gpu_hours: float,
                  granted_gpu_hours: float | None, reviews: Sequence[ReviewComment],
                  failed_check: str | None = None, note: str = "") -> str:
    """The letter's text; reviews are numbered, never named."""
    if decision == "accepted" and granted_gpu_hours is not None:
        part = ("in full" if granted_gpu_hours >= requested_gpu_hours else
                f"a partial award, {granted_gpu_hours / requested_gpu_hours:.0%} of the "
                "request")
        grant = (f"Granted: {_hours(granted_gpu_hours)} of the "
                 f"{_hours(requested_gpu_hours)} GPU-hours requested ({part}).\n")
    else:
        grant = f"No GPU-hours are granted ({_hours(requested_gpu_hours)} were requested).\n"
    comments = "\n".join(
        f"- Reviewer {i}" + (f" (technical {r.technical_score}/5, scientific "
                             f"{r.scientific_score}/5)" if r.technical_score else "")
        + f": {r.comment.strip() or 'no comment'}"
        for i, r in enumerate(reviews, 1)) or "- none"
    return LETTER.substitute(
        proposal_id=proposal_id, title=title, project=project, organization=organization,
        call=call, decision=decision, grant=grant, comments=comments,
        check=f"\nThe check that failed: {failed_check}\n" if failed_check else "",
        note=note.strip() or "none")
