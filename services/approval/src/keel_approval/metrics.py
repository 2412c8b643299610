"""Metrics of the approval service."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ApprovalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requested = Counter(
            "keel_approval_requests", "Approval requests received (new ones)", registry=registry
        )
        self.decided = Counter(
            "keel_approval_decisions", "Decisions published", ["outcome"], registry=registry
        )
        self.pending = Gauge(
            "keel_approval_pending", "Requests awaiting a decision", registry=registry
        )

    def track_pending(self, count: Callable[[], int]) -> None:
        self.pending.set_function(lambda: float(count()))
