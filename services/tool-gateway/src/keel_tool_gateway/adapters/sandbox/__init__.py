"""A sandbox for agent-written Python: separate process, namespaces, rlimits, unprivileged uid,
scratch directory, capped output and an enforced import allow-list (see docs/sandbox.md)."""

from keel_tool_gateway.adapters.sandbox.config import DEFAULT_ALLOWED_MODULES, SandboxSettings
from keel_tool_gateway.adapters.sandbox.errors import (
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
    SandboxViolation,
    SnippetFailed,
)
from keel_tool_gateway.adapters.sandbox.runner import Sandbox, SandboxResult

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "Sandbox",
    "SandboxError",
    "SandboxResult",
    "SandboxSettings",
    "SandboxTimeout",
    "SandboxUnavailable",
    "SandboxViolation",
    "SnippetFailed",
]
