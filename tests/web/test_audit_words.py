"""Every audit action the platform records reads in words on the audit page: a test
finds each ``record(..., "<action>", ...)`` in the source, so a new action without words
fails here rather than showing operators a bare code."""

from __future__ import annotations

import re
from pathlib import Path

from rechenwerk.access.models import ProposalState
from rechenwerk.web.rendering import AUDIT_ACTION_WORDS, audit_action

SRC = Path(__file__).resolve().parents[2] / "src" / "rechenwerk"
LITERAL = re.compile(r'record\(\s*[a-z_]+,\s*[^,]+,\s*"([a-z_]+\.[a-z_]+)"')


def _recorded_actions() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        found |= set(LITERAL.findall(path.read_text()))
    # proposal_states.py records f"proposal.{to.value}" for every state it moves to
    found |= {f"proposal.{s.value}" for s in ProposalState if s is not ProposalState.DRAFT}
    return found


def test_every_recorded_action_has_words() -> None:
    actions = _recorded_actions()
    assert len(actions) > 25  # the scan found the platform's actions
    missing = sorted(a for a in actions if not audit_action(a))
    assert not missing, f"audit actions without words in AUDIT_ACTION_WORDS: {missing}"
    assert audit_action("node.drain") == "drained a node"
    assert all(w and w[0].islower() for w in AUDIT_ACTION_WORDS.values())
