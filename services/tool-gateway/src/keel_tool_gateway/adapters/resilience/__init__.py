"""Retries (tenacity) and circuit breakers (``keel_core.resilience``): the gateway's
``domain.ports.ResiliencePort``, applying the rules of ``domain.resilience.rules``."""

from keel_tool_gateway.adapters.resilience.runner import Resilience, ResilienceObserver

__all__ = ["Resilience", "ResilienceObserver"]
