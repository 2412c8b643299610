"""The words around an approval: what a reviewer is told a call would do, and what the model
reads back when a person said no (as data, like any tool result)."""

from __future__ import annotations

from keel_agent_loop.domain.models import PendingApproval, ToolCall, ToolOutcome
from keel_agent_loop.domain.prompts import parse_arguments
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
