"""Metrics of the tool gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel_core.resilience.metrics import BreakerMetrics
from keel_tool_gateway.adapters.resilience.breaker import BreakerState

# Tool names come from models; names not in the registry share one label to bound cardinality.
UNKNOWN_TOOL = "_unknown"


class ToolGatewayMetrics:
    """Also the observer of retries and breakers (``domain.resilience.ResilienceObserver``):
    their labels are registered tool and dependency names, never a model's choice."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions = Counter(
            "keel_tool_gateway_executions",
            "Execute calls by tool and result status",
            ["tool", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "keel_tool_gateway_execution_seconds",
            "Time to decide and run one call (ledger replays excluded)",
            ["tool"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.ledger_hits = Counter(
            "keel_tool_gateway_ledger_hits",
            "Calls answered from the idempotency ledger without running",
            ["tool"],
            registry=registry,
        )
        self.retries = Counter(
            "keel_tool_gateway_retries",
            "Attempts that failed with a retryable error and were tried again",
            ["tool"],
            registry=registry,
        )
        self.breakers = BreakerMetrics(registry, "keel_tool_gateway", "breaker", "dependency")

    def breaker_changed(self, name: str, state: BreakerState, previous: BreakerState) -> None:
        self.breakers.breaker_changed(name, state, previous)

    def breaker_rejected(self, name: str) -> None:
        self.breakers.breaker_rejected(name)

    def retried(self, tool: str, attempt: int, wait_s: float) -> None:
        self.retries.labels(tool).inc()
