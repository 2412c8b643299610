"""Completing a request for a caller: the gateway's answer, counted, priced and audited.

The audit record carries who asked, which model answered, tokens, cost, whether it was a cache
hit and the names of the tools the model called: never message contents, which may hold user
data or secrets.

Where the record is written from: with the audit emitter in its default background mode
(``AUDIT_SYNC=false``, records written in chain order behind the answer) nothing the answer
depends on waits for it, so building, chaining and signing the record (the costliest part of a
cache hit) moves behind the answer too: ``audit_in_background`` queues it and one task writes
the queue in call order, so the chain order is the order the answers were given. A stop drains
the queue before the emitter closes (``drain``, a stop hook). With ``AUDIT_SYNC=true`` every
record is still acknowledged before its answer is returned, hits included (docs/guarantees.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.tracing import set_attributes
from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.usecases.gateway import Gateway

log = logging.getLogger(__name__)

AUDIT_ACTION = "llm.completion"

# What one audit record is made from: (request, completion, trace).
_Pending = tuple[CompletionRequest, Completion, str]


class Completions:
    def __init__(
        self,
        gateway: Gateway,
        audit: AuditEmitter,
        metrics: LLMMetrics,
        *,
        audit_in_background: bool = False,
    ) -> None:
        """``audit_in_background``: write records behind the answer, in order (only when the
        emitter does not wait for acknowledgements either: ``AUDIT_SYNC=false``)."""
        self._gateway = gateway
        self._audit = audit
        self._metrics = metrics
        self._background = audit_in_background
        self._pending: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None

    @property
    def gateway(self) -> Gateway:
        return self._gateway

    async def complete(self, request: CompletionRequest, *, trace: str = "") -> Completion:
        """One completion, accounted before it is returned. ``trace``: the caller's
        traceparent, recorded with the audit record."""
        completion = await self._gateway.complete(request)
        await self._account(request, completion, trace)
        return completion

    async def stream(
        self, request: CompletionRequest, *, trace: str = ""
    ) -> AsyncIterator[StreamEvent]:
        """Deltas as the provider produces them, then the whole completion, accounted before
        it is yielded."""
        async for event in self._gateway.stream(request):
            if isinstance(event, Completion):
                await self._account(request, event, trace)
            yield event

    async def _account(
        self, request: CompletionRequest, completion: Completion, trace: str
    ) -> None:
        usage = completion.usage
        prompt = usage.prompt_tokens if usage else 0
        generated = usage.completion_tokens if usage else 0
        cost = usage.cost_usd if usage else 0.0
        # The server span, in the GenAI conventions' terms (the provider and model the
        # router chose are known only here).
        set_attributes(
            {
                semconv.OPERATION: semconv.CHAT,
                semconv.PROVIDER: completion.provider,
                semconv.RESPONSE_MODEL: completion.model,
                semconv.USAGE_INPUT_TOKENS: prompt,
                semconv.USAGE_OUTPUT_TOKENS: generated,
                semconv.RESPONSE_FINISH_REASONS: (completion.finish_reason,),
                "keel.llm.cached": completion.cached,
                "keel.llm.cost_usd": cost,
            }
        )
        if not completion.cached:  # a hit spent nothing
            metrics = self._metrics
            metrics.child(metrics.tokens, completion.model, "prompt").inc(prompt)
            metrics.child(metrics.tokens, completion.model, "completion").inc(generated)
            metrics.child(metrics.cost, completion.model).inc(cost)
        if not self._background:
            await self._record(request, completion, trace)
            return
        self._pending.append((request, completion, trace))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_pending(), name="llm-audit-writer"
            )

    async def drain(self) -> None:
        """Write every queued record (a stop hook: before the audit emitter closes)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_pending(self) -> None:
        """The one writer: records in the order the answers were given."""
        while self._pending:
            request, completion, trace = self._pending.popleft()
            try:
                await self._record(request, completion, trace)
            except Exception:  # noqa: BLE001 - logged like any background audit failure
                log.exception("audit record of an LLM completion not written")

    async def _record(self, request: CompletionRequest, completion: Completion, trace: str) -> None:
        usage = completion.usage
        scope = request.scope
        await self._audit.record(
            AUDIT_ACTION,
            actor=scope.agent_id or "unknown",
            subject=completion.model,
            session_id=scope.session_id,
            trace=trace,
            details={
                "model": completion.model,
                "provider": completion.provider,
                "tenant": scope.tenant,
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
                "usage_estimated": bool(usage and usage.estimated),
                "cost_usd": usage.cost_usd if usage else 0.0,
                "finish_reason": completion.finish_reason,
                "cached": completion.cached,
                "tool_calls": [call.name for call in completion.message.tool_calls],
            },
        )
