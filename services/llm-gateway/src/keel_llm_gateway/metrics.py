"""Metrics of the LLM gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class LLMMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "keel_llm_tokens",
            "Tokens used, by model and kind (prompt or completion)",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "keel_llm_cost_usd", "Cost of completions in US dollars", ["model"], registry=registry
        )
        self.latency = Histogram(
            "keel_llm_request_seconds",
            "Time the provider took to answer",
            ["provider"],
            registry=registry,
            buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.errors = Counter(
            "keel_llm_errors",
            "Failed completions, by provider and error type",
            ["provider", "error"],
            registry=registry,
        )
