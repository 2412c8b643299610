"""Completing a request for a caller: the gateway's answer, counted, priced and audited.

The audit record carries who asked, which model answered, tokens, cost, whether it was a cache
hit and the names of the tools the model called: never message contents, which may hold user
data or secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.tracing import set_attributes
from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.usecases.gateway import Gateway

AUDIT_ACTION = "llm.completion"


class Completions:
    def __init__(self, gateway: Gateway, audit: AuditEmitter, metrics: LLMMetrics) -> None:
        self._gateway = gateway
        self._audit = audit
        self._metrics = metrics

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
            self._metrics.tokens.labels(completion.model, "prompt").inc(prompt)
            self._metrics.tokens.labels(completion.model, "completion").inc(generated)
            self._metrics.cost.labels(completion.model).inc(cost)
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
                "prompt_tokens": prompt,
                "completion_tokens": generated,
                "usage_estimated": bool(usage and usage.estimated),
                "cost_usd": cost,
                "finish_reason": completion.finish_reason,
                "cached": completion.cached,
                "tool_calls": [call.name for call in completion.message.tool_calls],
            },
        )
