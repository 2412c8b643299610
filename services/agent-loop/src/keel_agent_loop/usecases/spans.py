"""The spans of a session: one ``invoke_agent`` span per run (in the session's own trace), and
the time a person took to decide on an approval."""

from __future__ import annotations

from keel_agent_loop.domain.models import AgentState, PendingApproval
from keel_contracts.events import ApprovalDecided
from keel_core import semconv
from keel_core.tracing import current_traceparent, start_span, trace_id_of


def agent_attributes(state: AgentState) -> dict[str, str | int]:
    return {
        semconv.OPERATION: semconv.INVOKE_AGENT,
        semconv.AGENT_ID: state.agent_id,
        semconv.AGENT_NAME: state.agent_profile,
        semconv.CONVERSATION_ID: state.session_id,
        "keel.tenant": state.tenant,
        "keel.iteration": state.iteration,
    }


def session_parent(state: AgentState) -> str:
    """Spans of a session stay in its trace even when the record that woke it carries another
    (a decision published by a reviewer's own tool, say): then they hang off the session's."""
    return "" if trace_id_of(current_traceparent()) == trace_id_of(state.trace) else state.trace


def trace_approval_wait(
    state: AgentState, pending: PendingApproval, decision: ApprovalDecided
) -> None:
    """The time a person took, as a span from the parking to the decision (a session holds no
    span open while it waits: it may resume in another process)."""
    attributes = {
        "keel.approval.id": pending.approval_id,
        "keel.approval.outcome": decision.outcome,
        "keel.approval.reviewer": decision.reviewer,
        semconv.TOOL_NAME: pending.call.name,
    }
    with start_span(
        "approval wait",
        parent=session_parent(state),
        attributes=attributes,
        start_time_ns=int(pending.requested_at * 1e9),
    ):
        pass
