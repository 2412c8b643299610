"""What the loop needs from the outside world. Adapters implement these over gRPC and Kafka;
``keel_agent_loop.testing`` has fakes. Each port raises ``keel_contracts.errors`` types only."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Literal, Protocol

from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    FinishedSession,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_contracts.events import ApprovalRequested, TaskProgress
from keel_contracts.events.plans import Sampling

MemoryType = Literal["episodic", "semantic", "procedural"]

# A span in progress, as the loop sees it: something to enter and leave.
Span = AbstractContextManager[object]


class LLMPort(Protocol):
    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        """``sampling``: the session's own (a debater's temperature); None, the defaults."""
        ...


class ToolPort(Protocol):
    async def list_tools(self, profile: str) -> list[ToolSpec]: ...

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        """Run ``call`` once per ``idempotency_key``; ``approval_id`` names the approval of a
        call that needed one (the gateway verifies it and may run modified arguments);
        ``task_text`` is the session's goal: the trusted text the gateway's provenance check
        tells apart from what tools returned."""
        ...


class MemoryPort(Protocol):
    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]: ...

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        memory_type: MemoryType,
        metadata: dict[str, str],
    ) -> str:
        """Store one entry; returns its id (a content hash, so storing twice is harmless)."""
        ...


class CheckpointStore(Protocol):
    """The latest state of each unfinished session, and the durable end of each finished one
    (until its grace period passes), readable by every replica."""

    def get(self, session_id: str) -> AgentState | None:
        """The live checkpoint; None for an unknown or finished session."""
        ...

    def finished(self, session_id: str) -> FinishedSession | None:
        """The session's end marker, when it has finished (and was not swept yet)."""
        ...

    async def save_finished(self, finished: FinishedSession, durable: bool = True) -> None:
        """Replace the session's checkpoint with its end marker."""
        ...

    async def save(self, state: AgentState, durable: bool = True) -> None:
        """``durable=False``: queued in order, not awaited — for the per-iteration checkpoint,
        whose loss only means re-running an iteration (tool calls replay from the ledger)."""
        ...

    async def delete(self, session_id: str) -> None: ...


class CancelSignal(Protocol):
    def requested(self, session_id: str) -> str | None:
        """The reason given, when someone asked to cancel the session; else None."""
        ...


class EventSink(Protocol):
    """Where a session's progress and approval requests go (Kafka, the session store, tests)."""

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None: ...

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None: ...


class LoopObserver(Protocol):
    """Timings and outcomes, for metrics; kept out of the loop's logic."""

    def llm_call(self, seconds: float, ok: bool) -> None: ...

    def tool_call(self, tool: str, status: str, seconds: float) -> None: ...

    def step(self, seconds: float) -> None: ...

    def context_used(self, prompt_tokens: int, window_tokens: int) -> None: ...


class StepTracer(Protocol):
    """Opens a span around one step; the adapter is OpenTelemetry's (kept out of the domain)."""

    def span(self, name: str, attributes: Mapping[str, str | int]) -> Span: ...


class NoTracing:
    def span(self, name: str, attributes: Mapping[str, str | int]) -> Span:
        return contextlib.nullcontext()


class NullObserver:
    def llm_call(self, seconds: float, ok: bool) -> None:
        pass

    def tool_call(self, tool: str, status: str, seconds: float) -> None:
        pass

    def step(self, seconds: float) -> None:
        pass

    def context_used(self, prompt_tokens: int, window_tokens: int) -> None:
        pass


class NoCheckpoints:
    """For a loop without durability (tests, tools): nothing is kept."""

    def get(self, session_id: str) -> AgentState | None:
        return None

    def finished(self, session_id: str) -> FinishedSession | None:
        return None

    async def save(self, state: AgentState, durable: bool = True) -> None:
        pass

    async def save_finished(self, finished: FinishedSession, durable: bool = True) -> None:
        pass

    async def delete(self, session_id: str) -> None:
        pass


class NeverCancelled:
    def requested(self, session_id: str) -> str | None:
        return None


class TeeSink:
    """Send every event to several sinks, in order (the store first, so watchers see an event
    no later than Kafka does)."""

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        for sink in self._sinks:
            await sink.progress(ctx, event)

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        for sink in self._sinks:
            await sink.approval_requested(ctx, request)
