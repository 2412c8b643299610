"""Plan mode in a session: the model calls ``plan``, the session parks until the plan ends.

Like an approval (``parking``): the session checkpoints (durably) FIRST, then submits the
plan, so the plan's end always finds the parked checkpoint; it holds no consumer while the
plan runs, and the plan's ``PlanFinished`` (sent to the session's own lane) resumes it in
whichever process owns the session then. A session restarted while parked submits its plan
again: the plan id comes from the call, so the orchestrator ignores a plan it knows. A parked
session that is cancelled cancels its plan (``PlanParking.cancel``): nobody would read its
answer, and its sessions would spend budget for nothing.

What a plan is and how it is checked, submitted and reported belongs to the plans package;
the domain reaches it through ``PlanPort`` (``keel_agent_loop.plans.session.PlanModePort``).
"""

from __future__ import annotations

from typing import Protocol

from keel_agent_loop.domain.acting import ToolActor
from keel_agent_loop.domain.models import (
    AgentState,
    PendingPlan,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.ports import CheckpointStore
from keel_agent_loop.domain.prompts import idempotency_key
from keel_agent_loop.domain.reporter import SessionReporter
from keel_contracts.events.plans import PlanFinished, PlanSubmitted


class PlanPort(Protocol):
    def tool_for(self, profile: str) -> ToolSpec | None:
        """The ``plan`` tool when ``profile`` is configured for plan mode, else None."""
        ...

    def prepare(self, state: AgentState, call: ToolCall, index: int) -> PlanSubmitted | str:
        """The submission of the call's plan, or why it cannot run (words for the model)."""
        ...

    async def submit(self, submitted: PlanSubmitted, trace: str) -> None: ...

    async def cancel(self, plan_id: str, reason: str, requested_by: str, trace: str) -> None:
        """Ask the orchestrator to stop ``plan_id`` (its running nodes, its pending ones)."""
        ...

    def observation(self, finished: PlanFinished) -> str:
        """The call's result as the model reads it."""
        ...


class PlanParking:
    def __init__(
        self,
        port: PlanPort,
        checkpoints: CheckpointStore,
        reporter: SessionReporter,
        actor: ToolActor,
    ) -> None:
        self._port = port
        self._checkpoints = checkpoints
        self._reporter = reporter
        self._actor = actor

    def tool_for(self, state: AgentState) -> ToolSpec | None:
        return self._port.tool_for(state.agent_profile)

    async def act(self, state: AgentState, call: ToolCall, index: int) -> bool:
        """Run the ``index``-th call (a ``plan`` call): True when the session has parked on
        its plan; False when the plan was refused and the refusal is the call's result."""
        key = await self._actor.announce(state, call, index)
        prepared = self._port.prepare(state, call, index)
        if isinstance(prepared, str):
            outcome = ToolOutcome(status="error", error=prepared)
            await self._actor.observe(state, call, key, outcome)
            return False
        state.pending_plan = PendingPlan(plan_id=prepared.plan.plan_id, index=index, call=call)
        await self._reporter.move(state, "waiting_for_plan")
        await self._checkpoints.save(state)  # durable before the plan exists
        await self._port.submit(prepared, state.trace)
        return True

    async def resubmit(self, state: AgentState) -> None:
        """Submit a parked session's plan again (after a restart, nobody can tell whether the
        first submission reached the broker; a known plan is ignored by the orchestrator)."""
        pending = state.pending_plan
        if state.status != "waiting_for_plan" or pending is None:
            return
        prepared = self._port.prepare(state, pending.call, pending.index)
        if not isinstance(prepared, str):
            await self._port.submit(prepared, state.trace)

    async def cancel(self, state: AgentState, reason: str) -> None:
        """Before a session parked on its plan ends cancelled: cancel the plan too. Sent again
        if the session's cancel is redelivered; the orchestrator ignores a finished plan."""
        pending = state.pending_plan
        if state.status != "waiting_for_plan" or pending is None:
            return
        requested_by = f"session:{state.session_id}"
        await self._port.cancel(pending.plan_id, reason, requested_by, state.trace)

    async def resume(self, state: AgentState, finished: PlanFinished) -> PendingPlan | None:
        """Answer the parked call with the plan's end; None (and no change) when the session
        does not wait for this plan (a repeat, or another plan's end)."""
        pending = state.pending_plan
        if state.status != "waiting_for_plan" or pending is None:
            return None
        if pending.plan_id != finished.plan_id:
            return None
        state.pending_plan = None
        key = idempotency_key(state.session_id, state.iteration, pending.index)
        outcome = (
            ToolOutcome(status="ok", output=finished.output)
            if finished.status == "succeeded"
            else ToolOutcome(status="error", error=finished.error)
        )
        content = self._port.observation(finished)
        await self._actor.observe(state, pending.call, key, outcome, content=content)
        return pending
