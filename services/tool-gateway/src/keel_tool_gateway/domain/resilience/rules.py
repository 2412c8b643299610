"""Which failures are worth another try and which say a dependency is unwell: the gateway's
rules, applied by whatever runs the attempts (``adapters.resilience.Resilience`` in the
service, ``single.SingleAttempt`` when nothing else is wired)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from keel_tool_gateway.domain.registry import Tool, ToolError
from keel_tool_gateway.domain.resilience.errors import (
    AttemptTimedOut,
    CircuitOpen,
    RetryableToolError,
)
from keel_tool_gateway.domain.resilience.spec import DEFAULT_RESILIENCE, ToolResilience


def resilience_of(tool: Tool[Any]) -> ToolResilience:
    """The tool's declaration: its ``resilience`` attribute when it has one, else the default
    (only ``RetryableToolError`` is retried; the breaker is named after the tool)."""
    declared = getattr(tool, "resilience", None)
    return declared if isinstance(declared, ToolResilience) else DEFAULT_RESILIENCE


def is_retryable(spec: ToolResilience, exc: BaseException) -> bool:
    """Only what the tool declared safe. Never: validation errors, breaker refusals, plain
    ``ToolError``s (the tool refused on purpose), and time-outs of tools not idempotent."""
    if isinstance(exc, AttemptTimedOut):
        return exc.per_attempt and spec.idempotent
    if isinstance(exc, ValidationError | CircuitOpen):
        return False
    return isinstance(exc, RetryableToolError) or (
        bool(spec.retryable) and isinstance(exc, spec.retryable)
    )


def counts_against_breaker(spec: ToolResilience, exc: Exception) -> bool:
    """A sign the dependency is unwell: time-outs, retryable and unexpected errors."""
    if isinstance(exc, AttemptTimedOut | RetryableToolError):
        return True
    return is_retryable(spec, exc) or not isinstance(exc, ToolError)
