"""The episodic memory written at the end of every session: what was asked, what was done,
how it ended. Deterministic text, so a session finished twice (a redelivery) stores one entry
(memory ids are content hashes)."""

from __future__ import annotations

from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.domain.prompts import preview

LIMIT = 1_000


def episode(state: AgentState) -> tuple[str, dict[str, str]]:
    """Content and metadata of the session's episodic memory."""
    tools = ", ".join(state.tools_used) or "none"
    if state.status == "completed":
        result = f"Answer: {preview(state.answer, LIMIT)}"
    else:
        result = f"Error ({state.failure_reason or 'error'}): {preview(state.error, LIMIT)}"
    content = (
        f"Goal: {preview(state.goal, LIMIT)}\n"
        f"Outcome: {state.status} after {state.iteration} iteration(s)\n"
        f"{result}\n"
        f"Tools used: {tools}"
    )
    # Stored with the session's context, so the memory service files it under the session's
    # tenant (only that tenant recalls it); the tenant is in the metadata too, for readers.
    metadata = {
        "tenant": state.tenant or "default",
        "session_id": state.session_id,
        "agent_id": state.agent_id,
        "outcome": state.status,
    }
    return content, metadata
