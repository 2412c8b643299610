"""Metrics of the tool gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Tool names come from models; names not in the registry share one label to bound cardinality.
UNKNOWN_TOOL = "_unknown"


class ToolGatewayMetrics:
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
