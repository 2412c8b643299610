"""The words around an approval: what a reviewer is told a call would do, and what the model
reads back when a person said no (as data, like any tool result); and whether a decision read
from the bus may resume a session at all (signed by the approval service, for this call)."""

from __future__ import annotations

from datetime import datetime

from keel_agent_loop.domain.models import AgentState, PendingApproval, ToolCall, ToolOutcome
from keel_agent_loop.domain.prompts import parse_arguments
from keel_contracts.approvals import SignatureVerifier, binding_problem, signature_problem
from keel_contracts.events import ApprovalDecided


def consequences(call: ToolCall, outcome: ToolOutcome) -> str:
    """What running the call would do, in words a reviewer can judge."""
    arguments = parse_arguments(call.arguments_json)
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(arguments.items())) or "no arguments"
    rule = outcome.rule_id or "unknown rule"
    reason = outcome.error or outcome.output or "the policy requires a person's approval"
    return (
        f"Runs the tool {call.name!r} once with {shown}. Its effects happen outside Keel and "
        f"may not be reversible. Held by policy rule {rule}: {reason}."
    )


def refusal(pending: PendingApproval, decision: ApprovalDecided) -> str:
    """The tool message for a rejected or timed-out call: the call did not run."""
    comment = f": {decision.comment}" if decision.comment else ""
    if decision.outcome == "timed_out":
        return (
            f"APPROVAL TIMED OUT: nobody approved {pending.call.name} in time; "
            f"the call was not executed (approval {pending.approval_id}){comment}"
        )
    return (
        f"REJECTED by {decision.reviewer or 'a reviewer'}: {pending.call.name} was not "
        f"executed (approval {pending.approval_id}){comment}"
    )


def decision_problem(
    state: AgentState, decision: ApprovalDecided, verifier: SignatureVerifier, now: datetime
) -> str | None:
    """Why ``decision`` may not drive ``state`` on, or None: it must be signed by the approval
    service, not expired, and bound to this session and tenant and — while the session waits
    on it — to exactly the parked call (agent, tool, key, arguments). Anyone who can write
    ``keel.approval.decisions`` could otherwise approve, or rewrite, any parked call."""
    problem = signature_problem(decision, verifier, now)
    if problem is not None:
        return problem
    pending = state.pending_approval
    if pending is None or pending.approval_id != decision.approval_id:
        if decision.session_id != state.session_id or decision.tenant != state.tenant:
            return f"approval {decision.approval_id!r} was given for another session"
        return None
    return binding_problem(
        decision,
        session_id=state.session_id,
        tenant=state.tenant,
        tool_name=pending.call.name,
        idempotency_key=pending.idempotency_key,
        arguments=parse_arguments(pending.call.arguments_json),
        agent_id=state.agent_id,
    )
