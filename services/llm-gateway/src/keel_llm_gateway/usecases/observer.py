"""What the gateway reports as it works; ``metrics.LLMMetrics`` implements it. A port, so the
domain never imports prometheus."""

from __future__ import annotations

from typing import Protocol

from keel_core.resilience.breaker import BreakerObserver
from keel_llm_gateway.domain.budgets import ScopeKind, Spend
from keel_llm_gateway.domain.cache import CacheResult


class GatewayObserver(BreakerObserver, Protocol):
    def attempt(self, provider: str, outcome: str, seconds: float) -> None:
        """One call to one provider ended: ``outcome`` is "ok" or the error's type name."""
        ...

    def fallback(self, provider: str, reason: str) -> None:
        """``provider`` was skipped or failed and the next target of the chain is tried."""
        ...

    def cache(self, result: CacheResult) -> None: ...

    def budget_rejected(self, kind: ScopeKind) -> None: ...

    def spent(self, tenant: str, spend: Spend) -> None:
        """A completion (not a cache hit) cost ``spend``, charged to ``tenant``."""
        ...

    def repair(self, outcome: str) -> None:
        """Malformed output: "retried" (asked again), "fixed", "failed" (kept as it was)."""
        ...


class NullObserver:
    """Reports nothing (tests and benchmarks that do not look)."""

    def breaker_changed(self, name: str, state: object, previous: object) -> None:
        pass

    def breaker_rejected(self, name: str) -> None:
        pass

    def attempt(self, provider: str, outcome: str, seconds: float) -> None:
        pass

    def fallback(self, provider: str, reason: str) -> None:
        pass

    def cache(self, result: CacheResult) -> None:
        pass

    def budget_rejected(self, kind: ScopeKind) -> None:
        pass

    def spent(self, tenant: str, spend: Spend) -> None:
        pass

    def repair(self, outcome: str) -> None:
        pass
