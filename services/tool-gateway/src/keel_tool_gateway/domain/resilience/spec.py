"""What a tool says about its own failures: which are worth another try, and what it depends
on. The gateway never guesses: without a declaration only ``RetryableToolError`` is retried.

Imports nothing of the gateway, so the registry's ``Tool`` can carry a ``ToolResilience``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolResilience:
    """A tool's retry and breaker declaration.

    ``retryable``: exception types (besides ``RetryableToolError``) that are safe to retry,
    e.g. ``(httpx.TransportError,)``. ``idempotent``: running the call twice is harmless, so
    an attempt that timed out (and may have acted) can be tried again; only with
    ``attempt_timeout_s`` set, since the tool's time-out ends every attempt together.
    ``max_attempts``: overrides the gateway's default. ``dependency``: the breaker's name;
    tools that share a backend share its breaker (default: the tool's own name).
    """

    retryable: tuple[type[Exception], ...] = ()
    idempotent: bool = False
    attempt_timeout_s: float | None = None
    max_attempts: int | None = None
    dependency: str | None = None


DEFAULT_RESILIENCE = ToolResilience()
