"""Errors a tool raises, or sees raised, around retries and breakers."""

from __future__ import annotations

from keel_tool_gateway.domain.registry import ToolError


class RetryableToolError(ToolError):
    """A transient failure after which nothing happened (a refused connection, a 503): the
    same call may be tried again. Raise it from a tool to ask for a retry."""


class CircuitOpen(ToolError):
    """The breaker refused the call: the tool did not run."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class AttemptTimedOut(Exception):
    """An attempt ran past its limit: ``limit_s`` is the tool's time-out, or the per-attempt
    one when that was the shorter."""

    def __init__(self, limit_s: float, *, per_attempt: bool) -> None:
        super().__init__(f"timed out after {limit_s:g}s")
        self.limit_s = limit_s
        self.per_attempt = per_attempt


class CallFailed(Exception):
    """The call ran ``attempts`` times and the last attempt raised ``cause``."""

    def __init__(self, cause: Exception, attempts: int) -> None:
        super().__init__(f"{attempts} attempt(s); last: {cause!r}")
        self.cause = cause
        self.attempts = attempts
