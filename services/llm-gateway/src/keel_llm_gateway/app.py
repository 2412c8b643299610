"""Composition root of the LLM gateway: the only place that wires its parts.

``build(settings, runtime)`` wires the parts onto a runtime (the real one, or
``keel_core.testing.InMemoryRuntime`` in component tests) and starts nothing: providers that
need it (the local model) load in a start hook; ``serve(settings)`` builds on a
``ServiceRuntime`` and runs it until SIGTERM. The parts themselves are made in ``factory``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_contracts.topics import LLM_BUDGET
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service
from keel_llm_gateway.adapters.budget_topic import TopicBudgets
from keel_llm_gateway.config import Settings
from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.factory import build_gateway, build_providers
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.usecases.completions import Completions

SERVICE = "llm-gateway"
# What counts against which rate limit (docs/rate-limits.md); limits are off until set. The
# model is the one the caller asked for ("-" when it left the choice to routing).
RATE_LIMIT_RULES = [
    rule("/keel.llm.v1.LLMGateway/Complete", "model", key="model"),
    rule("/keel.llm.v1.LLMGateway/", "calls"),
]


@dataclass(frozen=True)
class LLMGatewayParts:
    providers: dict[str, Provider]
    completions: Completions
    # The shared budget ledger; None when no limit is set or budget_shared is off.
    budgets: TopicBudgets | None = None


def build(settings: Settings, runtime: Runtime) -> LLMGatewayParts:
    # Providers are built first, so a bad scenario file or a missing model file stops
    # start-up before Kafka is touched.
    providers = build_providers(settings)
    for provider in providers.values():
        start = getattr(provider, "start", None)
        if start is not None:
            runtime.on_start(start)  # e.g. load the local model before serving
        runtime.on_stop(provider.aclose)
    metrics = LLMMetrics(runtime.registry)
    budgets = shared_budgets(settings, runtime)
    gateway = build_gateway(settings, providers, metrics, budgets)
    # Records behind the answer unless each must be acknowledged first (AUDIT_SYNC); the
    # queue is drained after the gRPC server stops and before the emitter closes.
    completions = Completions(
        gateway, runtime.audit, metrics, audit_in_background=not settings.audit_sync
    )
    runtime.on_stop(completions.drain)
    runtime.serve_grpc(
        [
            (
                LLMGatewayServicer(completions),
                llm_pb2_grpc.add_LLMGatewayServicer_to_server,
                llm_pb2.DESCRIPTOR.services_by_name["LLMGateway"].full_name,
            )
        ]
    )
    limits = settings.rate_limits.with_default_rules(RATE_LIMIT_RULES)
    apply_rate_limits(RateLimiter(limits), runtime, SERVICE)
    return LLMGatewayParts(providers, completions, budgets)


def shared_budgets(settings: Settings, runtime: Runtime) -> TopicBudgets | None:
    """The ledger every replica shares, when there is a limit to enforce (ADR 0015); without
    one nothing is written and no request waits for the log."""
    if not settings.budgets.any or not settings.budget_shared:
        return None
    budgets = TopicBudgets(
        BudgetFold(settings.budgets, settings.budget_hold_ttl_s),
        runtime.follower(LLM_BUDGET, "budget"),
        runtime.producer,
        SERVICE,
        time.time,
        wait_s=settings.budget_wait_s,
    )
    runtime.on_start(budgets.start)  # every spend so far is folded before serving
    runtime.on_stop(budgets.stop)
    return budgets


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
