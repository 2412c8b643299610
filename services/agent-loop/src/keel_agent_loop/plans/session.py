"""The session side of plan mode: ``domain.plan_mode.PlanPort`` over the plans package and the
bus. Which profiles plan is configuration (``Settings.plan_mode_profiles``); what a plan may be
is ``plan_mode.MODEL_PLAN_LIMITS``."""

from __future__ import annotations

from keel_agent_loop.domain.models import AgentState, ToolCall, ToolSpec
from keel_agent_loop.plans.from_model import PlanParseError
from keel_agent_loop.plans.plan_mode import (
    MODEL_PLAN_LIMITS,
    plan_from_call,
    plan_observation,
    plan_submission,
    plan_tool,
)
from keel_agent_loop.plans.validation import PlanLimits
from keel_contracts.events import Envelope
from keel_contracts.events.plans import PlanCancelRequested, PlanFinished, PlanSubmitted
from keel_contracts.topics import PLANS
from keel_core.bus.producer import Publisher

SOURCE = "agent-loop.plan-mode"


class PlanModePort:
    def __init__(
        self,
        publisher: Publisher,
        profiles: frozenset[str],
        limits: PlanLimits = MODEL_PLAN_LIMITS,
        topic: str = PLANS,
    ) -> None:
        self._publisher = publisher
        self._profiles = profiles
        self._limits = limits
        self._topic = topic
        self._tool = plan_tool(limits)

    def tool_for(self, profile: str) -> ToolSpec | None:
        return self._tool if profile in self._profiles else None

    def prepare(self, state: AgentState, call: ToolCall, index: int) -> PlanSubmitted | str:
        try:
            spec = plan_from_call(call.arguments_json, self._limits)
        except PlanParseError as exc:
            return str(exc)
        return plan_submission(
            state.session_id, state.iteration, index, spec, state.goal, state.tenant or "default"
        )

    async def submit(self, submitted: PlanSubmitted, trace: str) -> None:
        plan_id = submitted.plan.plan_id
        envelope = Envelope.wrap(submitted, source=SOURCE, session_id=plan_id, trace=trace)
        await self._publisher.publish(self._topic, envelope, key=plan_id)

    async def cancel(self, plan_id: str, reason: str, requested_by: str, trace: str) -> None:
        request = PlanCancelRequested(plan_id=plan_id, reason=reason, requested_by=requested_by)
        envelope = Envelope.wrap(request, source=SOURCE, session_id=plan_id, trace=trace)
        await self._publisher.publish(self._topic, envelope, key=plan_id)

    def observation(self, finished: PlanFinished) -> str:
        return plan_observation(finished)
