"""Metrics of the memory service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class MemoryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter(
            "keel_memory_stored", "Entries stored (upserts)", ["type"], registry=registry
        )
        self.retrieved = Counter(
            "keel_memory_retrieved_items", "Items returned by Retrieve", registry=registry
        )
        self.forgotten = Counter(
            "keel_memory_forgotten", "Entries deleted by Forget", registry=registry
        )
        # How full the caller's budget was: the context-window utilisation signal.
        self.budget_utilisation = Histogram(
            "keel_memory_budget_utilisation",
            "tokens_used / token_budget per Retrieve",
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
        )
