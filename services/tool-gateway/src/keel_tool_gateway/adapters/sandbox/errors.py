"""How a sandbox run fails: every one is a ToolError, so the model reads the message as written
and the gateway reports the call with status ``error``."""

from __future__ import annotations

from keel_tool_gateway.domain.registry import ToolError


class SandboxError(ToolError):
    """Base of the sandbox's failures; messages start with ``sandbox:``."""


class SandboxUnavailable(SandboxError):
    """Isolation could not be set up, so nothing ran."""


class SandboxViolation(SandboxError):
    """The snippet tried something the sandbox forbids, or went past a limit."""


class SandboxTimeout(SandboxViolation):
    """The snippet ran past its wall-clock time and was killed."""


class SnippetFailed(SandboxError):
    """The snippet ran and exited with a failure of its own (an exception, a syntax error)."""
