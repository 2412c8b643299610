"""Metrics of the policy service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "keel_policy_decisions", "Policy decisions", ["decision", "rule"], registry=registry
        )
