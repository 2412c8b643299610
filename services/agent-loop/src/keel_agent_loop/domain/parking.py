"""Approvals as events: a call that needs a person's approval parks the session, and a
reviewer's decision resumes it.

Parking checkpoints first and asks second: a decision can only arrive for a request that was
published, so it always finds the parked checkpoint. The session holds no consumer while it
waits; the decision may resume it in another process.
"""

from __future__ import annotations

from keel_agent_loop.domain.acting import ToolActor, not_accepted
from keel_agent_loop.domain.approvals import consequences, refusal
from keel_agent_loop.domain.catalogs import ToolCatalogs
from keel_agent_loop.domain.models import AgentState, PendingApproval, ToolCall, ToolOutcome
from keel_agent_loop.domain.ports import CheckpointStore, EventSink
from keel_agent_loop.domain.prompts import idempotency_key, new_approval_id, parse_arguments
from keel_agent_loop.domain.reporter import SessionReporter
from keel_contracts.events import ApprovalDecided, ApprovalRequested


class ApprovalParking:
    def __init__(
        self,
        sink: EventSink,
        checkpoints: CheckpointStore,
        catalogs: ToolCatalogs,
        reporter: SessionReporter,
        actor: ToolActor,
    ) -> None:
        self._sink = sink
        self._checkpoints = checkpoints
        self._catalogs = catalogs
        self._reporter = reporter
        self._actor = actor

    async def park(
        self,
        state: AgentState,
        call: ToolCall,
        index: int,
        reasoning: str,
        outcome: ToolOutcome,
    ) -> None:
        """Park the session on the ``index``-th call of the latest reply, then ask for it."""
        key = idempotency_key(state.session_id, state.iteration, index)
        pending = PendingApproval(
            approval_id=new_approval_id(key),
            idempotency_key=key,
            index=index,
            call=call,
            reasoning=reasoning,
        )
        await self._reporter.emit(
            state,
            "tool_result",
            {
                "tool": call.name,
                "call_id": call.id,
                "idempotency_key": key,
                "status": outcome.status,
                "rule_id": outcome.rule_id,
                "error": outcome.error,
                "output": "",
                "approval_id": pending.approval_id,
            },
        )
        await self._reporter.move(state, "waiting_for_approval")
        state.pending_approval = pending
        await self._checkpoints.save(state)
        await self._publish_request(state, pending, consequences(call, outcome))

    async def reask(self, state: AgentState) -> None:
        """Publish a parked session's request again (same approval id)."""
        if state.pending_approval is not None:
            await self._publish_request(state, state.pending_approval, consequences_text="")

    async def resume(self, state: AgentState, decision: ApprovalDecided) -> PendingApproval | None:
        """Apply the decision to the parked call: run it (approved, modified) or answer it with
        the refusal (rejected, timed out). The call it answered; None when the session was
        cancelled meanwhile."""
        pending = await take_decided(self._reporter, state, decision)
        if await self._reporter.stop_if_cancelled(state):
            return None
        if decision.outcome in ("approved", "modified"):
            await self._run_approved(state, pending)
        else:
            # Not run, by a person's decision: the model reads that as data, in those words.
            refused = ToolOutcome(
                status="denied", error=f"{decision.outcome} by {decision.reviewer}"
            )
            await self._actor.observe(
                state, pending.call, pending.idempotency_key, refused, refusal(pending, decision)
            )
        return pending

    async def _run_approved(self, state: AgentState, pending: PendingApproval) -> None:
        await self._reporter.move(state, "executing_tool")
        key = pending.idempotency_key
        outcome = await self._actor.execute(state, pending.call, key, approved=True)
        if outcome.status == "needs_approval":
            outcome = not_accepted(outcome)
        await self._actor.observe(state, pending.call, key, outcome)

    async def _publish_request(
        self, state: AgentState, pending: PendingApproval, consequences_text: str
    ) -> None:
        request = ApprovalRequested(
            approval_id=pending.approval_id,
            agent_id=state.agent_id,
            tool_name=pending.call.name,
            arguments=parse_arguments(pending.call.arguments_json),
            reasoning=pending.reasoning,
            idempotency_key=pending.idempotency_key,
            consequences=consequences_text
            or consequences(pending.call, ToolOutcome(status="needs_approval")),
            arguments_schema=await self._catalogs.arguments_schema(
                state.agent_profile, pending.call.name
            ),
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
            },
        )


async def take_decided(
    reporter: SessionReporter, state: AgentState, decision: ApprovalDecided
) -> PendingApproval:
    """The parked request ``decision`` answers, taken off the session and reported as
    ``approval_decided``; raises ValueError when the session waits for no such request. Shared
    by every kind of parking (a tool call, a guard's hold), so they resume alike."""
    pending = state.pending_approval
    if state.status != "waiting_for_approval" or pending is None:
        raise ValueError(f"session {state.session_id} is not waiting for an approval")
    if pending.approval_id != decision.approval_id:
        raise ValueError(f"session {state.session_id} waits for {pending.approval_id}")
    state.pending_approval = None
    state.decided_approvals.append(decision.approval_id)
    await reporter.emit(
        state,
        "approval_decided",
        {
            "approval_id": decision.approval_id,
            "outcome": decision.outcome,
            "reviewer": decision.reviewer,
            "comment": decision.comment,
            "tool": pending.call.name,
            "idempotency_key": pending.idempotency_key,
        },
    )
    return pending
