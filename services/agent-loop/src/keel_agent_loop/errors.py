"""Errors of the agent loop. Failures of other services arrive as ``keel_contracts.errors`` types;
these are the loop's own."""

from __future__ import annotations

from keel_contracts.errors import ConfigError


class AgentLoopError(Exception):
    """Base of the agent loop's own errors: bugs and broken invariants, never user input."""


class ServiceOutage(AgentLoopError):
    """A Keel service the session needs (tool gateway, LLM gateway, memory) could not be
    reached: ``Unavailable`` or ``DeadlineExceeded`` after the adapter's retries. Unlike a
    tool's own error this is never shown to the model; the session waits it out (see
    ``usecases.run_session``) and fails with reason ``infrastructure`` only past the
    operator's limit."""

    def __init__(self, service: str, cause: Exception) -> None:
        super().__init__(f"{service} unavailable: {cause}")
        self.service = service
        self.cause = cause


class GuardsFileError(ConfigError):
    """A guards file that cannot be read or does not validate: ``file:line: field: reason``."""
