"""Metrics of the policy service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "keel_policy_decisions",
            "Policy decisions",
            ["decision", "rule", "policy_set"],
            registry=registry,
        )
        self.shadow_decisions = Counter(
            "keel_policy_shadow_decisions",
            "Decisions of shadow (candidate) policies, by agreement with the enforced one",
            ["policy_set", "agrees"],
            registry=registry,
        )
        self.reloads = Counter(
            "keel_policy_reloads",
            "Policy reloads after a file changed (outcome ok, or error: previous policy kept)",
            ["outcome"],
            registry=registry,
        )
        self.rules = Gauge(
            "keel_policy_rules", "Rules in force, over every policy set", registry=registry
        )
        self.sets = Gauge("keel_policy_sets", "Policy sets in force", registry=registry)
