"""The ReAct loop: think (LLM), act (tools), observe (append results), until an answer.

Pure logic over ports. Every status change goes through the state machine and is published as
a ``state`` event. The loop checkpoints after every ``checkpoint_every`` completed iterations
and whenever it parks for an approval, so a session resumes from its last checkpoint: a crash
mid-iteration re-runs that iteration (THINK with the same messages, ACT with the same
idempotency keys, which the tool gateway answers from its ledger).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel_agent_loop.domain.approvals import consequences, refusal
from keel_agent_loop.domain.budget import BudgetGuard
from keel_agent_loop.domain.context import EstimateCounter, TokenCounter, fit_memories
from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    FailureReason,
    PendingApproval,
    ProgressKind,
    SessionStatus,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.ports import (
    CancelSignal,
    CheckpointStore,
    EventSink,
    LLMPort,
    LoopObserver,
    MemoryPort,
    NeverCancelled,
    NoCheckpoints,
    NullObserver,
    ToolPort,
)
from keel_agent_loop.domain.progress import progress_event, prompt_record
from keel_agent_loop.domain.prompts import (
    approval_id_for,
    idempotency_key,
    observation,
    opening_messages,
    parse_arguments,
    preview,
)
from keel_contracts.canonical import sha256_hex
from keel_contracts.errors import KeelError
from keel_contracts.events import ApprovalDecided, ApprovalRequested
from keel_core.tracing import start_span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    system_prompt: str
    memory_token_budget: int = 400
    # Longest tool output or answer copied into a progress event (the messages keep it whole).
    preview_chars: int = 500
    context_window_tokens: int = 8192
    # Tokens of the window kept free for the model's reply.
    reply_reserve_tokens: int = 1024
    checkpoint_every: int = 1


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
        *,
        checkpoints: CheckpointStore | None = None,
        cancels: CancelSignal | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        self._llm = llm
        self._tools = tools
        self._memory = memory
        self._sink = sink
        self._config = config
        self._observer = observer or NullObserver()
        self._clock = clock
        self._checkpoints = checkpoints or NoCheckpoints()
        self._cancels = cancels or NeverCancelled()
        self._counter = counter or EstimateCounter()
        # Tool names of each profile's catalog as last fetched, to label metrics.
        # The tool catalog of each profile as last fetched: metric labels, approval schemas.
        self._catalogs: dict[str, dict[str, ToolSpec]] = {}
        self._budget = BudgetGuard(
            self._counter, config.context_window_tokens, config.reply_reserve_tokens
        )

    async def run(self, state: AgentState) -> AgentState:
        """Run a session until it finishes or parks waiting for an approval. Tool failures
        never raise; an unreachable LLM or tool catalog fails the session; only bugs and sink
        or checkpoint errors raise."""
        if state.status == "idle":
            if await self._cancelled(state):
                return state
            await self._begin(state)
        while not state.finished and state.status != "waiting_for_approval":
            await self.step(state)
        return state

    async def step(self, state: AgentState) -> None:
        """One iteration: think, then act and observe each tool call, or finish."""
        if await self._cancelled(state):
            return
        if state.iteration >= state.max_iterations:
            await self._fail(
                state, "iteration_limit", f"no final answer after {state.iteration} iterations"
            )
            return
        if state.status != "planning":
            await self._move(state, "planning")
        started = self._clock()
        state.iteration += 1
        try:
            with start_span(
                f"step {state.iteration}",
                attributes={"keel.session.id": state.session_id, "keel.iteration": state.iteration},
            ):
                await self._iterate(state)
        finally:
            self._observer.step(self._clock() - started)

    async def decide(self, state: AgentState, decision: ApprovalDecided) -> AgentState:
        """Apply a reviewer's decision to a parked session, then run it on."""
        pending = state.pending_approval
        if state.status != "waiting_for_approval" or pending is None:
            raise ValueError(f"session {state.session_id} is not waiting for an approval")
        if pending.approval_id != decision.approval_id:
            raise ValueError(f"session {state.session_id} waits for {pending.approval_id}")
        state.pending_approval = None
        state.decided_approvals.append(decision.approval_id)
        await self._emit(
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
        if await self._cancelled(state):
            return state
        if decision.outcome in ("approved", "modified"):
            await self._move(state, "executing_tool")
            outcome = await self._execute(state, pending.call, pending.idempotency_key, True)
            if outcome.status == "needs_approval":
                outcome = ToolOutcome(
                    status="error",
                    error="the tool gateway did not accept the approval",
                    rule_id=outcome.rule_id,
                )
            await self._observe(state, pending.call, pending.idempotency_key, outcome)
        else:
            # Not run, by a person's decision: the model reads that as data, in those words.
            refused = ToolOutcome(
                status="denied", error=f"{decision.outcome} by {decision.reviewer}"
            )
            await self._observe(
                state, pending.call, pending.idempotency_key, refused, refusal(pending, decision)
            )
        await self._act_from(state, pending.index + 1)
        if _status(state) == "processing_result":
            await self._iteration_done(state)
        return await self.run(state)

    async def reask(self, state: AgentState) -> None:
        """Publish a parked session's approval request again (same approval id): after a
        restart nobody can tell whether the first one reached the broker."""
        pending = state.pending_approval
        if pending is None:
            return
        await self._publish_request(state, pending, consequences_text="")

    async def cancel(self, state: AgentState, reason: str) -> None:
        """Cancel a session that is not running here (parked, or only checkpointed)."""
        if not state.finished:
            await self._stop_cancelled(state, reason)

    async def resumed(self, state: AgentState, trigger: str) -> None:
        await self._emit(
            state,
            "resumed",
            {"status": state.status, "iteration": state.iteration, "trigger": trigger},
        )

    async def _iterate(self, state: AgentState) -> None:
        try:
            catalog = await self._tools.list_tools(state.agent_profile)
            self._catalogs[state.agent_profile] = {spec.name: spec for spec in catalog}
            message = await self._think(state, catalog)
        except KeelError as exc:
            await self._fail(state, "error", str(exc))
            return
        if message is None:
            return
        # For replay: the prompt just sent (state.messages before the reply) and the reply whole.
        sent = prompt_record(state.messages, catalog, with_tools=state.iteration == 1)
        state.messages.append(message)
        await self._emit(
            state,
            "thought",
            {
                "content": preview(message.content, self._config.preview_chars),
                "tool_calls": [c.name for c in message.tool_calls],
                "message": message.model_dump(mode="json"),
                "usage": state.usage.model_dump(),
                **sent,
            },
        )
        if over := self._budget.over_after_call(state):
            await self._fail(state, "budget", over)
            return
        if not message.tool_calls:
            await self._complete(state, message.content)
            return
        await self._act_from(state, 0)
        if state.status == "processing_result":
            await self._iteration_done(state)

    async def _iteration_done(self, state: AgentState) -> None:
        if state.iteration % self._config.checkpoint_every == 0:
            # Not awaited to the broker: losing it in a crash re-runs this iteration, whose tool
            # calls the tool gateway answers from its ledger. Parking and finishing are durable.
            await self._checkpoints.save(state, durable=False)

    async def _act_from(self, state: AgentState, start: int) -> None:
        """Run the calls of the latest reply from ``start`` on; stop when one parks."""
        message = next(m for m in reversed(state.messages) if m.role == "assistant")
        for index in range(start, len(message.tool_calls)):
            if await self._cancelled(state):
                return
            await self._act(state, message.tool_calls[index], index, message.content)
            if state.status == "waiting_for_approval" or state.finished:
                return

    async def _begin(self, state: AgentState) -> None:
        memories = await self._recall(state)
        state.messages = opening_messages(self._config.system_prompt, memories, state.goal)
        await self._move(state, "planning")
        await self._emit(
            state,
            "started",
            {
                "goal": preview(state.goal, self._config.preview_chars),
                "agent_profile": state.agent_profile,
                "max_iterations": state.max_iterations,
                "memory_items": len(memories),
                # For replay: what was injected, and which system prompt (its hash, not its text).
                "memories": memories,
                "system_prompt_sha256": sha256_hex(self._config.system_prompt),
                "token_budget": state.token_budget,
                "cost_budget_usd": state.cost_budget_usd,
            },
        )

    async def _recall(self, state: AgentState) -> list[str]:
        budget = self._config.memory_token_budget
        if budget <= 0:
            return []
        try:
            items = await self._memory.retrieve(state.context(), state.goal, budget)
        except KeelError as exc:
            log.warning(
                "memory unavailable for %s, continuing without it: %s", state.session_id, exc
            )
            return []
        return fit_memories(items, budget, self._counter)

    async def _think(self, state: AgentState, catalog: list[ToolSpec]) -> ChatMessage | None:
        fitted = self._budget.fit_window(state.messages, catalog)
        if fitted.dropped:
            state.messages = fitted.messages
            await self._emit(
                state,
                "history_trimmed",
                {
                    "dropped": fitted.dropped,
                    "kept": len(fitted.messages),
                    "prompt_tokens": fitted.prompt_tokens,
                    "window_tokens": self._config.context_window_tokens,
                },
            )
        if over := self._budget.over_before_call(state, fitted.prompt_tokens):
            await self._fail(state, "budget", over)
            return None
        self._observer.context_used(fitted.prompt_tokens, self._config.context_window_tokens)
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

    async def _act(self, state: AgentState, call: ToolCall, index: int, reasoning: str) -> None:
        key = idempotency_key(state.session_id, state.iteration, index)
        await self._move(state, "executing_tool")
        await self._emit(
            state,
            "tool_call",
            {
                "tool": call.name,
                "call_id": call.id,
                "idempotency_key": key,
                "arguments": call.arguments_json,
            },
        )
        if call.name not in state.tools_used:
            state.tools_used.append(call.name)
        outcome = await self._execute(state, call, key, False)
        if outcome.status != "needs_approval":
            await self._observe(state, call, key, outcome)
            return
        pending = PendingApproval(
            approval_id=approval_id_for(key),
            idempotency_key=key,
            index=index,
            call=call,
            reasoning=reasoning,
        )
        await self._park(state, pending, outcome)

    async def _execute(
        self, state: AgentState, call: ToolCall, key: str, approved: bool
    ) -> ToolOutcome:
        approval_id = approval_id_for(key) if approved else ""
        started = self._clock()
        try:
            outcome = await self._tools.execute(state.context(), call, key, approval_id)
        except KeelError as exc:
            outcome = ToolOutcome(status="error", error=f"tool gateway: {exc}")
        label = call.name if call.name in self._catalogs.get(state.agent_profile, {}) else "unknown"
        self._observer.tool_call(label, outcome.status, self._clock() - started)
        return outcome

    async def _observe(
        self,
        state: AgentState,
        call: ToolCall,
        key: str,
        outcome: ToolOutcome,
        content: str | None = None,
    ) -> None:
        await self._move(state, "processing_result")
        state.messages.append(
            ChatMessage(
                role="tool",
                content=observation(call, outcome) if content is None else content,
                tool_call_id=call.id,
                name=call.name,
            )
        )
        await self._emit(
            state,
            "tool_result",
            {
                "tool": call.name,
                "call_id": call.id,
                "idempotency_key": key,
                "status": outcome.status,
                "rule_id": outcome.rule_id,
                "error": outcome.error,
                "output": preview(outcome.output, self._config.preview_chars),
            },
        )

    async def _park(
        self, state: AgentState, pending: PendingApproval, outcome: ToolOutcome
    ) -> None:
        """Checkpoint first, then ask: a decision can only arrive for a request that was
        published, so it always finds the parked checkpoint."""
        await self._emit(
            state,
            "tool_result",
            {
                "tool": pending.call.name,
                "call_id": pending.call.id,
                "idempotency_key": pending.idempotency_key,
                "status": outcome.status,
                "rule_id": outcome.rule_id,
                "error": outcome.error,
                "output": "",
                "approval_id": pending.approval_id,
            },
        )
        await self._move(state, "waiting_for_approval")
        state.pending_approval = pending
        await self._checkpoints.save(state)
        await self._publish_request(state, pending, consequences(pending.call, outcome))

    async def _arguments_schema(self, profile: str, tool: str) -> dict[str, Any]:
        """The schema reviewers' modified arguments must meet; {} when the catalog cannot say
        (the tool gateway validates again before anything runs)."""
        if profile not in self._catalogs:
            try:
                catalog = await self._tools.list_tools(profile)
            except KeelError:
                return {}
            self._catalogs[profile] = {spec.name: spec for spec in catalog}
        spec = self._catalogs[profile].get(tool)
        if spec is None:
            return {}
        try:
            schema = json.loads(spec.parameters_json_schema)
        except ValueError:
            return {}
        return schema if isinstance(schema, dict) else {}

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
            arguments_schema=await self._arguments_schema(state.agent_profile, pending.call.name),
        )
        await self._sink.approval_requested(state.context(), request)
        await self._emit(
            state,
            "approval_requested",
            {
                "approval_id": pending.approval_id,
                "tool": pending.call.name,
                "idempotency_key": pending.idempotency_key,
            },
        )

    async def _cancelled(self, state: AgentState) -> bool:
        reason = self._cancels.requested(state.session_id)
        if reason is None or state.finished:
            return state.finished
        await self._stop_cancelled(state, reason)
        return True

    async def _stop_cancelled(self, state: AgentState, reason: str) -> None:
        error = f"cancelled: {reason}"
        previous = state.fail("cancelled", error)
        await self._state_event(state, previous)
        log.info("session %s cancelled: %s", state.session_id, reason)
        await self._emit(
            state,
            "cancelled",
            {"reason": "cancelled", "error": error, "iterations": state.iteration},
        )

    async def _complete(self, state: AgentState, answer: str) -> None:
        previous = state.complete(answer)
        await self._state_event(state, previous)
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
        previous = state.fail(reason, error)
        await self._state_event(state, previous)
        log.warning("session %s failed (%s): %s", state.session_id, reason, error)
        await self._emit(
            state, "failed", {"reason": reason, "error": error, "iterations": state.iteration}
        )

    async def _move(self, state: AgentState, to: SessionStatus) -> None:
        previous = state.move(to)
        await self._state_event(state, previous)

    async def _state_event(self, state: AgentState, previous: SessionStatus) -> None:
        await self._emit(state, "state", {"from": previous, "to": state.status})

    async def _emit(self, state: AgentState, kind: ProgressKind, detail: dict[str, Any]) -> None:
        await self._sink.progress(state.context(), progress_event(kind, state.iteration, detail))


def _status(state: AgentState) -> SessionStatus:
    """The current status, read through a call so type narrowing from an earlier check does
    not outlive the awaits that change it."""
    return state.status
