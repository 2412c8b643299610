"""The decision as a fold of one approval's intents in log order (ADR 0014).

Every approval replica reads the same intents in the same order (one approval's intents share
a partition of ``keel.approval.intents``), so every replica's fold reaches the same decision
at the same record, with the same content and time (the completing record's own time): the
``ApprovalDecided`` that results is identical whoever publishes it. Rules, in log order: the
first terminal intent wins (a rejection, a modification, the sweeper's time-out, or the
approval that reaches the quorum); quorum approvals count distinct eligible reviewers; an
intent after the decision, or one the request's rules refuse, changes nothing and says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from keel_approval.domain.arguments import check_arguments
from keel_approval.domain.models import STATUS_OF, TIMEOUT_REVIEWER, Approval, Outcome
from keel_contracts.errors import InvalidArgument


class Intent(BaseModel):
    """One reviewer's action (or the sweeper's time-out) as read from the intents topic."""

    model_config = ConfigDict(frozen=True)

    approval_id: str
    outcome: Outcome
    reviewer: str
    comment: str = ""
    modified_arguments: dict[str, Any] | None = None
    # The session the (signed) intent names; "" when not known (unchecked).
    session_id: str = ""
    # The record's envelope: its time becomes the decision's time; its id names it.
    at: datetime
    record: str = ""


class Folded(BaseModel):
    """What one intent did: ``approval`` after it; ``counted`` when it changed the approval
    (a vote added, or the decision); ``decided`` when it completed it; else ``reason``."""

    model_config = ConfigDict(frozen=True)

    approval: Approval
    counted: bool
    decided: bool = False
    reason: str = ""


def fold(current: Approval, intent: Intent) -> Folded:
    """``current`` after ``intent``; pure and deterministic."""
    if not current.pending:
        return _ignored(
            current,
            f"approval {current.id!r} is already {current.status} by {current.decided_by}",
        )
    problem = _problem(current, intent)
    if problem is not None:
        return _ignored(current, problem)
    reviewer = intent.reviewer.strip()
    if intent.outcome != "approve":
        return _decided(current, intent, reviewer)
    if reviewer in current.approved_by:
        return _ignored(current, f"{reviewer!r} has approved {current.id!r} already")
    votes = (*current.approved_by, reviewer)
    if len(votes) < current.required_approvals:
        return Folded(approval=current.model_copy(update={"approved_by": votes}), counted=True)
    voted = current.model_copy(update={"approved_by": votes})
    return _decided(voted, intent, ",".join(votes))


def _problem(current: Approval, intent: Intent) -> str | None:
    reviewer = intent.reviewer.strip()
    if intent.session_id and intent.session_id != current.session_id:
        return f"intent for {current.id!r} names another session"
    if intent.outcome == "time_out":
        return None if reviewer == TIMEOUT_REVIEWER else "time-out by a reviewer"
    if not reviewer:
        return "intent without a reviewer"
    if reviewer == current.agent_id or reviewer == TIMEOUT_REVIEWER:
        return f"{reviewer!r} cannot decide {current.id!r}"
    if intent.outcome != "modify":
        return None if intent.modified_arguments is None else "modified arguments without modify"
    if current.required_approvals > 1:
        return f"approval {current.id!r} is under a quorum and cannot be modified by one reviewer"
    if intent.modified_arguments is None:
        return "modify without arguments"
    try:
        check_arguments(current.arguments_schema, intent.modified_arguments)
    except InvalidArgument as exc:
        return str(exc)
    return None


def _decided(current: Approval, intent: Intent, reviewer: str) -> Folded:
    decided = current.model_copy(
        update={
            "status": STATUS_OF[intent.outcome],
            "decided_by": reviewer,
            "decided_at": intent.at,
            "comment": intent.comment,
            "modified_arguments": intent.modified_arguments if intent.outcome == "modify" else None,
        }
    )
    return Folded(approval=decided, counted=True, decided=True)


def _ignored(current: Approval, reason: str) -> Folded:
    return Folded(approval=current, counted=False, reason=reason)
