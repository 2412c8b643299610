"""The shared circuit breaker's own refusal type (the tool gateway passes its own)."""

from __future__ import annotations

import pytest

from keel_contracts.errors import Unavailable
from keel_core.resilience.breaker import BreakerState, CircuitBreaker, CircuitOpen


def test_by_default_a_refused_call_is_unavailable_and_names_the_breaker() -> None:
    breaker = CircuitBreaker("upstream", failure_threshold=1, reset_timeout_s=60, clock=lambda: 0.0)
    with pytest.raises(RuntimeError), breaker.guard(lambda exc: True):
        raise RuntimeError("down")
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen, match="circuit open for upstream") as caught:
        with breaker.guard(lambda exc: True):
            pytest.fail("an open breaker must not run the call")
    assert isinstance(caught.value, Unavailable)
    assert caught.value.name == "upstream"


def test_a_service_can_raise_its_own_refusal() -> None:
    class Refused(Exception):
        def __init__(self, name: str, message: str) -> None:
            super().__init__(f"{name}: {message}")

    breaker = CircuitBreaker(
        "tool", failure_threshold=1, reset_timeout_s=60, clock=lambda: 0.0, rejection=Refused
    )
    with pytest.raises(RuntimeError), breaker.guard(lambda exc: True):
        raise RuntimeError("down")
    with pytest.raises(Refused, match="^tool: circuit open"), breaker.guard(lambda exc: True):
        pass
