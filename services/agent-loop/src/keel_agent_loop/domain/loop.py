"""The ReAct loop: think (LLM), act (tools), observe (append results), until an answer.

Pure logic over ports. ``run`` continues any state it is given, and each ``step`` leaves the
state consistent, so checkpoints (after a step) and resume (``run`` on a restored state) can
be added around it without changing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    FailureReason,
    ProgressKind,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.ports import (
    EventSink,
    LLMPort,
    LoopObserver,
    MemoryPort,
    NullObserver,
    ToolPort,
)
from keel_agent_loop.domain.prompts import (
    approval_id_for,
    idempotency_key,
    observation,
    opening_messages,
    parse_arguments,
    preview,
)
from keel_core.errors import KeelError
from keel_core.events import ApprovalRequested, TaskProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    system_prompt: str
    memory_token_budget: int = 400
    # Longest tool output or answer copied into a progress event (the messages keep it whole).
    preview_chars: int = 500


class AgentLoop:
    def __init__(
        self,
        llm: LLMPort,
        tools: ToolPort,
        memory: MemoryPort,
        sink: EventSink,
        config: LoopConfig,
        observer: LoopObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._llm = llm
        self._tools = tools
        self._memory = memory
        self._sink = sink
        self._config = config
        self._observer = observer or NullObserver()
        self._clock = clock

    async def run(self, state: AgentState) -> AgentState:
        """Run a session until it is completed or failed. Tool failures never raise; an
        unreachable LLM or tool catalog fails the session; only bugs and sink errors raise."""
        if state.status == "pending":
            await self._begin(state)
        while state.status == "running":
            await self.step(state)
        return state

    async def step(self, state: AgentState) -> None:
        """One iteration: think, then act and observe each tool call, or finish."""
        if state.iteration >= state.max_iterations:
            await self._fail(
                state, "iteration_limit", f"no final answer after {state.iteration} iterations"
            )
            return
        started = self._clock()
        state.iteration += 1
        try:
            await self._iterate(state)
        finally:
            self._observer.step(self._clock() - started)

    async def _iterate(self, state: AgentState) -> None:
        try:
            catalog = await self._tools.list_tools(state.agent_profile)
            message = await self._think(state, catalog)
        except KeelError as exc:
            await self._fail(state, "error", str(exc))
            return
        state.messages.append(message)
        await self._emit(
            state,
            "thought",
            {
                "content": preview(message.content, self._config.preview_chars),
                "tool_calls": [c.name for c in message.tool_calls],
            },
        )
        if not message.tool_calls:
            await self._complete(state, message.content)
            return
        known = {spec.name for spec in catalog}
        for index, call in enumerate(message.tool_calls):
            await self._act(state, call, index, message.content, known)

    async def _begin(self, state: AgentState) -> None:
        memories = await self._recall(state)
        state.messages = opening_messages(self._config.system_prompt, memories, state.goal)
        state.status = "running"
        await self._emit(
            state,
            "started",
            {
                "goal": preview(state.goal, self._config.preview_chars),
                "agent_profile": state.agent_profile,
                "max_iterations": state.max_iterations,
                "memory_items": len(memories),
            },
        )

    async def _recall(self, state: AgentState) -> list[str]:
        if self._config.memory_token_budget <= 0:
            return []
        try:
            return await self._memory.retrieve(
                state.context(), state.goal, self._config.memory_token_budget
            )
        except KeelError as exc:
            log.warning(
                "memory unavailable for %s, continuing without it: %s", state.session_id, exc
            )
            return []

    async def _think(self, state: AgentState, catalog: list[ToolSpec]) -> ChatMessage:
        started = self._clock()
        try:
            reply = await self._llm.complete(state.context(), list(state.messages), catalog)
        except KeelError:
            self._observer.llm_call(self._clock() - started, ok=False)
            raise
        self._observer.llm_call(self._clock() - started, ok=True)
        state.usage = state.usage + reply.usage
        # Every call needs an id so its observation can answer it; models sometimes omit them.
        calls = tuple(
            call if call.id else call.model_copy(update={"id": f"call_{state.iteration}_{i}"})
            for i, call in enumerate(reply.message.tool_calls)
        )
        return ChatMessage(role="assistant", content=reply.message.content, tool_calls=calls)

    async def _act(
        self, state: AgentState, call: ToolCall, index: int, reasoning: str, known: set[str]
    ) -> None:
        key = idempotency_key(state.session_id, state.iteration, index)
        base = {"tool": call.name, "call_id": call.id, "idempotency_key": key}
        await self._emit(state, "tool_call", {**base, "arguments": call.arguments_json})
        started = self._clock()
        try:
            outcome = await self._tools.execute(state.context(), call, key)
        except KeelError as exc:
            outcome = ToolOutcome(status="error", error=f"tool gateway: {exc}")
        label = call.name if call.name in known else "unknown"
        self._observer.tool_call(label, outcome.status, self._clock() - started)
        approval_id = ""
        if outcome.status == "needs_approval":
            approval_id = await self._request_approval(state, call, key, reasoning)
        state.messages.append(
            ChatMessage(
                role="tool",
                content=observation(call, outcome, approval_id),
                tool_call_id=call.id,
                name=call.name,
            )
        )
        result: dict[str, Any] = {
            **base,
            "status": outcome.status,
            "rule_id": outcome.rule_id,
            "error": outcome.error,
            "output": preview(outcome.output, self._config.preview_chars),
        }
        if approval_id:
            result["approval_id"] = approval_id
        await self._emit(state, "tool_result", result)

    async def _request_approval(
        self, state: AgentState, call: ToolCall, key: str, reasoning: str
    ) -> str:
        approval_id = approval_id_for(key)
        request = ApprovalRequested(
            approval_id=approval_id,
            agent_id=state.agent_id,
            tool_name=call.name,
            arguments=parse_arguments(call.arguments_json),
            reasoning=reasoning,
            idempotency_key=key,
        )
        await self._sink.approval_requested(state.context(), request)
        await self._emit(
            state,
            "approval_requested",
            {"approval_id": approval_id, "tool": call.name, "idempotency_key": key},
        )
        return approval_id

    async def _complete(self, state: AgentState, answer: str) -> None:
        state.complete(answer)
        await self._emit(
            state,
            "completed",
            {
                "answer": preview(answer, self._config.preview_chars),
                "iterations": state.iteration,
                **state.usage.model_dump(),
            },
        )

    async def _fail(self, state: AgentState, reason: FailureReason, error: str) -> None:
        state.fail(reason, error)
        log.warning("session %s failed (%s): %s", state.session_id, reason, error)
        await self._emit(
            state, "failed", {"reason": reason, "error": error, "iterations": state.iteration}
        )

    async def _emit(self, state: AgentState, kind: ProgressKind, detail: dict[str, Any]) -> None:
        event = TaskProgress(kind=kind, iteration=state.iteration, detail=detail)
        await self._sink.progress(state.context(), event)
