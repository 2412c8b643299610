"""Errors of the tool gateway."""

from __future__ import annotations

from keel_core.errors import KeelError


class ToolGatewayError(KeelError):
    """Base of the errors the tool gateway raises on purpose."""


class DuplicateTool(ToolGatewayError):
    """Two tools registered under one name: a wiring bug, found at start-up."""
