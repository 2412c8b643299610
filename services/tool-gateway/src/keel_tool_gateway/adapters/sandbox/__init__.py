"""A sandbox for agent-written Python: separate process, namespaces, a minimal pivoted root,
no privileges, a seccomp filter, a cgroup, rlimits, a capped scratch tmpfs, capped output and an
enforced import allow-list (see docs/sandbox.md). ``box`` runs any argv in the same boundary."""

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
