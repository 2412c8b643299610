"""Ports that wait out short outages of the services behind them.

A call that fails with ``Unavailable`` or ``DeadlineExceeded`` is tried again with doubling
backoff until the step's deadline; past it the error is raised, and the loop turns it into
``ServiceOutage`` (the session parks and is driven again, ``usecases.run_session``). Retrying
is safe: tool calls carry their idempotency key (the gateway's ledger runs each once), the LLM
and memory retrieval have no effects. Any other error passes at once. Storing an episode is not
retried: it is best effort at the end of a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from keel_agent_loop.domain.models import (
    ChatMessage,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.ports import LLMPort, MemoryPort, MemoryType, ToolPort
from keel_contracts.errors import DeadlineExceeded, Unavailable
from keel_contracts.events.plans import Sampling

log = logging.getLogger(__name__)

T = TypeVar("T")


class Patience:
    def __init__(
        self,
        deadline_s: float,
        backoff_s: float,
        backoff_max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deadline_s = deadline_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock

    async def call(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        give_up_at = self._clock() + self._deadline_s
        delay = self._backoff_s
        while True:
            try:
                return await attempt()
            except (Unavailable, DeadlineExceeded) as exc:
                if self._clock() + delay >= give_up_at:
                    raise
                log.info("%s: %s; trying again in %.2fs", what, exc, delay)
            await asyncio.sleep(delay)  # backoff between attempts
            delay = min(max(delay * 2, 0.001), self._backoff_max_s)


class PatientLLM:
    def __init__(self, llm: LLMPort, patience: Patience) -> None:
        self._llm = llm
        self._patience = patience

    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        if sampling is None:
            return await self._patience.call(
                "llm-gateway Complete", lambda: self._llm.complete(ctx, messages, tools)
            )
        return await self._patience.call(
            "llm-gateway Complete", lambda: self._llm.complete(ctx, messages, tools, sampling)
        )


class PatientTools:
    def __init__(self, tools: ToolPort, patience: Patience) -> None:
        self._tools = tools
        self._patience = patience

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        return await self._patience.call(
            "tool-gateway ListTools", lambda: self._tools.list_tools(profile)
        )

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        return await self._patience.call(
            f"tool-gateway Execute {idempotency_key}",
            lambda: self._tools.execute(
                ctx, call, idempotency_key, approval_id, task_text=task_text
            ),
        )


class PatientMemory:
    def __init__(self, memory: MemoryPort, patience: Patience) -> None:
        self._memory = memory
        self._patience = patience

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        return await self._patience.call(
            "memory Retrieve", lambda: self._memory.retrieve(ctx, query, budget)
        )

    async def store(
        self, ctx: RequestContext, content: str, memory_type: MemoryType, metadata: dict[str, str]
    ) -> str:
        return await self._memory.store(ctx, content, memory_type, metadata)
