"""Metrics of the LLM gateway; implements the use case's ``GatewayObserver``.

Exported names (Prometheus adds ``_total`` to counters): ``keel_llm_tokens_total``,
``keel_llm_cost_usd_total``, ``keel_llm_request_seconds``, ``keel_llm_errors_total``,
``keel_llm_cache_requests_total{result}``, ``keel_llm_fallbacks_total``,
``keel_llm_breaker_state``, ``keel_llm_breaker_transitions_total``,
``keel_llm_breaker_rejections_total``, ``keel_llm_budget_rejections_total``,
``keel_llm_tenant_tokens_total``, ``keel_llm_tenant_cost_usd_total``,
``keel_llm_output_repairs_total``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel_core.resilience.breaker import BreakerState
from keel_core.resilience.metrics import BreakerMetrics
from keel_llm_gateway.domain.budgets import ScopeKind, Spend
from keel_llm_gateway.domain.cache import CacheResult


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
            "Time one provider took to answer one attempt",
            ["provider"],
            registry=registry,
            buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.errors = Counter(
            "keel_llm_errors",
            "Failed provider attempts, by provider and error type",
            ["provider", "error"],
            registry=registry,
        )
        self.cache_requests = Counter(
            "keel_llm_cache_requests",
            "Response cache lookups: hit, miss, or bypass (not cacheable: temperature > 0)",
            ["result"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "keel_llm_fallbacks",
            "Targets given up on (failed or breaker open) so the next in the chain was tried",
            ["provider", "reason"],
            registry=registry,
        )
        self.breakers = BreakerMetrics(registry, "keel_llm", "provider", "provider")
        self.budget_rejections = Counter(
            "keel_llm_budget_rejections",
            "Requests refused because a budget would be exceeded, by scope kind",
            ["scope"],
            registry=registry,
        )
        self.tenant_tokens = Counter(
            "keel_llm_tenant_tokens",
            "Tokens charged to each tenant (cache hits are free)",
            ["tenant"],
            registry=registry,
        )
        self.tenant_cost = Counter(
            "keel_llm_tenant_cost_usd",
            "US dollars charged to each tenant",
            ["tenant"],
            registry=registry,
        )
        self.repairs = Counter(
            "keel_llm_output_repairs",
            "Malformed model output: retried, then fixed or failed",
            ["outcome"],
            registry=registry,
        )
        # Children by (metric, label values): ``labels`` takes a lock and checks its arguments on
        # every call; a request touches half a dozen of them. As many entries as the metrics
        # themselves hold children.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        # Every known label set starts at 0, so rates and alerts see "none yet", not "no data".
        for result in CacheResult:
            self.cache_requests.labels(result.value)
        for kind in ScopeKind:
            self.budget_rejections.labels(kind.value)
        for outcome in ("retried", "fixed", "failed"):
            self.repairs.labels(outcome)

    def breaker_changed(self, name: str, state: BreakerState, previous: BreakerState) -> None:
        self.breakers.breaker_changed(name, state, previous)

    def breaker_rejected(self, name: str) -> None:
        self.breakers.breaker_rejected(name)

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def attempt(self, provider: str, outcome: str, seconds: float) -> None:
        self.child(self.latency, provider).observe(seconds)
        if outcome != "ok":
            self.errors.labels(provider, outcome).inc()

    def fallback(self, provider: str, reason: str) -> None:
        self.fallbacks.labels(provider, reason).inc()

    def cache(self, result: CacheResult) -> None:
        self.child(self.cache_requests, result.value).inc()

    def budget_rejected(self, kind: ScopeKind) -> None:
        self.budget_rejections.labels(kind.value).inc()

    def spent(self, tenant: str, spend: Spend) -> None:
        self.child(self.tenant_tokens, tenant or "none").inc(spend.tokens)
        self.child(self.tenant_cost, tenant or "none").inc(spend.cost_usd)

    def repair(self, outcome: str) -> None:
        self.repairs.labels(outcome).inc()
