"""A session held by a guard or an escalation: parked for a person exactly like a tool call
that needs an approval (same request, inbox, signed decision and checkpoint), on a pseudo-tool
that names what approval means.

- ``keel.publish_answer`` {answer}: approve publishes the answer, modify publishes the
  reviewer's ``answer``, reject (or time-out) fails the session with the reviewer's note.
- ``keel.continue_session`` {reason}: approve continues, modify with an ``answer`` publishes
  it, reject fails the session with the note.
"""

from __future__ import annotations

import json

from keel_agent_loop.domain.guarding import (
    CONTINUE_SESSION,
    GUARD_TOOLS,
    PUBLISH_ANSWER,
    GuardDecision,
)
from keel_agent_loop.domain.models import AgentState, PendingApproval, ToolCall
from keel_agent_loop.domain.parking import take_decided
from keel_agent_loop.domain.ports import CheckpointStore, EventSink
from keel_agent_loop.domain.prompts import new_approval_id, parse_arguments
from keel_agent_loop.domain.reporter import SessionReporter
from keel_contracts.events import ApprovalDecided, ApprovalRequested

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
}


def held_by_guard(state: AgentState) -> bool:
    """Whether the session waits on a guard's request (not on a tool call's)."""
    pending = state.pending_approval
    return pending is not None and pending.call.name in GUARD_TOOLS


class GuardParking:
    def __init__(
        self, sink: EventSink, checkpoints: CheckpointStore, reporter: SessionReporter
    ) -> None:
        self._sink = sink
        self._checkpoints = checkpoints
        self._reporter = reporter

    async def hold_answer(self, state: AgentState, decision: GuardDecision) -> None:
        """Park a final answer until a person lets it out (or rewrites or rejects it)."""
        key = f"{state.session_id}:{state.iteration}:answer"
        arguments = {"answer": decision.text, "reason": decision.reason}
        await self._park(state, PUBLISH_ANSWER, key, arguments, decision)

    async def hold_session(self, state: AgentState, decision: GuardDecision) -> None:
        """Park before the next model call until a person says whether to go on."""
        await self._park(
            state, CONTINUE_SESSION, decision.key, {"reason": decision.reason}, decision
        )

    async def reask(self, state: AgentState) -> None:
        if state.pending_approval is not None:
            await self._publish(state, state.pending_approval)

    async def resume(self, state: AgentState, decision: ApprovalDecided) -> None:
        """Apply a person's decision: the session finishes, or is left ``planning`` to run on."""
        pending = await take_decided(self._reporter, state, decision)
        if await self._reporter.stop_if_cancelled(state):
            return
        if decision.outcome not in ("approved", "modified"):
            note = f": {decision.comment}" if decision.comment else ""
            held = parse_arguments(pending.call.arguments_json).get("reason", "")
            error = f"{decision.outcome} by {decision.reviewer or 'a reviewer'}{note} ({held})"
            await self._reporter.failed(state, "error", error)
            return
        answer = _answer_of(pending, decision)
        if answer is not None:
            await self._reporter.completed(state, answer)
        else:
            await self._reporter.move(state, "planning")

    async def _park(
        self,
        state: AgentState,
        tool: str,
        key: str,
        arguments: dict[str, str],
        decision: GuardDecision,
    ) -> None:
        call = ToolCall(
            id=f"guard_{state.iteration}", name=tool, arguments_json=json.dumps(arguments)
        )
        pending = PendingApproval(
            approval_id=new_approval_id(key),
            idempotency_key=key,
            index=-1,
            call=call,
            reasoning=f"{decision.reason} (guard rule {decision.rule_id})",
        )
        await self._reporter.move(state, "waiting_for_approval")
        state.pending_approval = pending
        await self._checkpoints.save(state)
        await self._publish(state, pending)

    async def _publish(self, state: AgentState, pending: PendingApproval) -> None:
        reason = pending.reasoning or "a guard asked for a person"
        if pending.call.name == PUBLISH_ANSWER:
            what = "Publishes this final answer as the session's result"
        else:
            what = "Lets the session go on (or publish a reviewer's answer)"
        request = ApprovalRequested(
            approval_id=pending.approval_id,
            agent_id=state.agent_id,
            tool_name=pending.call.name,
            arguments=parse_arguments(pending.call.arguments_json),
            reasoning=reason,
            idempotency_key=pending.idempotency_key,
            consequences=f"{what}. Held by guard: {reason}.",
            arguments_schema=ANSWER_SCHEMA,
            tenant=state.tenant,
        )
        await self._sink.approval_requested(state.context(), request)
        await self._reporter.emit(
            state,
            "approval_requested",
            {
                "approval_id": pending.approval_id,
                "tool": pending.call.name,
                "idempotency_key": pending.idempotency_key,
                "reason": reason,
            },
        )


def _answer_of(pending: PendingApproval, decision: ApprovalDecided) -> str | None:
    """The answer to publish, or None to run on (an approved ``keel.continue_session``)."""
    if decision.outcome == "modified" and decision.modified_arguments:
        answer = decision.modified_arguments.get("answer")
        if isinstance(answer, str) and answer:
            return answer
    if pending.call.name == PUBLISH_ANSWER:
        return str(parse_arguments(pending.call.arguments_json).get("answer", ""))
    return None
