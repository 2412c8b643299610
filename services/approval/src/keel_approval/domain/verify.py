"""Checks on decisions and votes read back from ``keel.approval.decisions``.

A record on the topic is applied only if it could have been made through the service's own
path: a signature proves the approval service wrote it, and these checks hold it to the rules
the book applies when a reviewer decides (bound to this request, a reviewer who is not the
requesting agent, the quorum, arguments the tool accepts). So a leaked key or a bug in one
replica cannot settle a request another way than a reviewer could.
"""

from __future__ import annotations

from keel_approval.domain.arguments import check_arguments
from keel_approval.domain.models import TIMEOUT_REVIEWER, Approval, Vote
from keel_contracts.approvals import binding_problem
from keel_contracts.errors import InvalidArgument
from keel_contracts.events import ApprovalDecided


def decision_problem(request: Approval, event: ApprovalDecided) -> str | None:
    """Why ``event`` may not settle ``request``, or None."""
    bound = binding_problem(
        event,
        session_id=request.session_id,
        tenant=request.tenant,
        tool_name=request.tool_name,
        idempotency_key=request.idempotency_key,
        arguments=request.arguments,
        agent_id=request.agent_id,
    )
    if bound is not None:
        return bound
    if event.outcome == "timed_out":
        return None if event.reviewer == TIMEOUT_REVIEWER else "time-out by a reviewer"
    reviewers = [r.strip() for r in event.reviewer.split(",")] if event.reviewer else []
    if not reviewers or not all(reviewers):
        return "decision without a reviewer"
    if request.agent_id in reviewers:
        return f"{request.agent_id!r} cannot decide its own request"
    if event.outcome == "approved" and len(set(reviewers)) < request.required_approvals:
        return (
            f"approval by {len(set(reviewers))} reviewer(s), the quorum is "
            f"{request.required_approvals}"
        )
    if event.outcome in ("rejected", "modified") and len(reviewers) != 1:
        return f"a {event.outcome} decision names one reviewer"
    if event.outcome == "modified":
        if request.required_approvals > 1:
            return "a request under a quorum cannot be modified by one reviewer"
        if event.modified_arguments is None:
            return "modified without arguments"
        try:
            check_arguments(request.arguments_schema, event.modified_arguments)
        except InvalidArgument as exc:
            return str(exc)
    elif event.modified_arguments is not None:
        return f"modified arguments with outcome {event.outcome}"
    return None


def vote_problem(request: Approval, vote: Vote) -> str | None:
    """Why ``vote`` may not count toward ``request``'s quorum, or None."""
    if vote.session_id and vote.session_id != request.session_id:
        return f"vote for {vote.approval_id!r} names another session"
    if request.agent_id in vote.approvals:
        return f"{request.agent_id!r} cannot vote on its own request"
    if not all(r.strip() for r in vote.approvals):
        return "vote without a reviewer"
    return None
