"""Errors of the agent loop. Failures of other services arrive as ``keel_contracts.errors`` types;
these are the loop's own."""

from __future__ import annotations


class AgentLoopError(Exception):
    """Base of the agent loop's own errors: bugs and broken invariants, never user input."""
