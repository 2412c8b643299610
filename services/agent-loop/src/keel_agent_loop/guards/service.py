"""The guard stage the loop calls (``domain.guarding.OutputGuards``): the engine in force,
swapped whole by the reloader, and an audit record (``guard.<verdict>``) for every decision
that is not a pass, so what a guard changed or stopped can always be traced to its rule."""

from __future__ import annotations

from typing import Any, Protocol

from keel_agent_loop.domain.guarding import GuardDecision
from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.guards.engine import GuardEngine
from keel_contracts.chat import ToolCall

ACTOR = "agent-loop"


class Auditor(Protocol):
    """What the guards need of ``keel_core.audit.AuditEmitter``."""

    async def record(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        session_id: str = "",
        details: dict[str, Any] | None = None,
        trace: str = "",
    ) -> Any: ...


class GuardHolder:
    """The engine in force and the fingerprint of the file it came from."""

    def __init__(self, engine: GuardEngine, fingerprint: str) -> None:
        self.engine = engine
        self.fingerprint = fingerprint

    def swap(self, engine: GuardEngine, fingerprint: str) -> None:
        self.engine, self.fingerprint = engine, fingerprint


class AuditedGuards:
    def __init__(self, holder: GuardHolder, audit: Auditor) -> None:
        self._holder = holder
        self._audit = audit

    async def answer(self, state: AgentState, text: str) -> GuardDecision:
        decision = self._holder.engine.check_answer(text)
        await self._record(state, decision, stage="answer", subject="answer")
        return decision

    async def tool_call(self, state: AgentState, call: ToolCall) -> GuardDecision:
        decision = self._holder.engine.check_tool(call)
        await self._record(state, decision, stage="tool", subject=call.name)
        return decision

    async def progress(self, state: AgentState, offered: frozenset[str]) -> GuardDecision:
        decision = self._holder.engine.check_progress(state, offered)
        await self._record(state, decision, stage="escalation", subject="session")
        return decision

    async def _record(
        self, state: AgentState, decision: GuardDecision, *, stage: str, subject: str
    ) -> None:
        if decision.verdict == "pass":
            return
        await self._audit.record(
            f"guard.{decision.verdict}",
            actor=ACTOR,
            subject=subject,
            session_id=state.session_id,
            details={
                "stage": stage,
                "rule": decision.rule_id,
                "reason": decision.reason,
                "rules": [hit.rule_id for hit in decision.hits],
                "iteration": state.iteration,
            },
        )
