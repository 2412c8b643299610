"""The tool gateway's circuit breaker: ``keel_core.resilience.breaker``'s, refusing with the
tool error ``CircuitOpen`` so a refused call reaches the caller as a tool failure."""

from __future__ import annotations

import time
from collections.abc import Callable

from keel_core.resilience.breaker import BreakerObserver as BreakerObserver
from keel_core.resilience.breaker import BreakerState as BreakerState
from keel_core.resilience.breaker import CircuitBreaker as _CoreBreaker
from keel_tool_gateway.domain.resilience.errors import CircuitOpen


class CircuitBreaker(_CoreBreaker):
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        observer: BreakerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            name,
            failure_threshold=failure_threshold,
            reset_timeout_s=reset_timeout_s,
            observer=observer,
            clock=clock,
            wall_clock=wall_clock,
            rejection=CircuitOpen,
        )
