"""Metrics of the approval service."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Human decisions take seconds to days.
DECISION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


class ApprovalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requested = Counter(
            "keel_approval_requests", "Approval requests received (new ones)", registry=registry
        )
        self.decided = Counter(
            "keel_approval_decisions",
            "Decisions published, by outcome (approved, rejected, modified, timed_out)",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "keel_approval_pending", "Requests awaiting a decision", registry=registry
        )
        self.time_to_decision = Histogram(
            "keel_approval_time_to_decision_seconds",
            "From the request's arrival to its decision",
            ["outcome"],
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.webhook = Counter(
            "keel_approval_webhook_notifications",
            "Webhook notifications, by result (ok, error, dropped)",
            ["result"],
            registry=registry,
        )
        self.rebuilt = Gauge(
            "keel_approval_rebuilt_records",
            "Records read from the request and decision topics at start",
            ["topic"],
            registry=registry,
        )

    def track_pending(self, count: Callable[[], int]) -> None:
        self.pending.set_function(lambda: float(count()))
