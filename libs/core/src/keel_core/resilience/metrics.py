"""Prometheus series of circuit breakers: the ``BreakerObserver`` a service hands its breakers.

One shape for every service that has breakers (the tool gateway per dependency, the LLM gateway
per provider), so alerts and panels read them alike: ``<prefix>_breaker_state`` (0 closed,
1 open, 2 half-open), ``<prefix>_breaker_transitions_total{state}`` and
``<prefix>_breaker_rejections_total``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from keel_core.resilience.breaker import BreakerState


class BreakerMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str, label: str, guarded: str) -> None:
        """``label`` names the breaker's label (``breaker``, ``provider``); ``guarded`` says in
        words what one breaker guards (for the help texts)."""
        self.state = Gauge(
            f"{prefix}_breaker_state",
            f"Circuit breaker state per {guarded}: 0 closed, 1 open, 2 half-open",
            [label],
            registry=registry,
        )
        self.transitions = Counter(
            f"{prefix}_breaker_transitions",
            "Circuit breaker transitions by the state entered",
            [label, "state"],
            registry=registry,
        )
        self.rejections = Counter(
            f"{prefix}_breaker_rejections",
            f"Calls that failed fast because a {guarded}'s breaker was open",
            [label],
            registry=registry,
        )

    def breaker_changed(self, name: str, state: BreakerState, previous: BreakerState) -> None:
        self.state.labels(name).set(int(state))
        if state is not previous:
            self.transitions.labels(name, state.name.lower()).inc()

    def breaker_rejected(self, name: str) -> None:
        self.rejections.labels(name).inc()
