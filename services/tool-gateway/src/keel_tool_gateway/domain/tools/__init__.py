"""Built-in tools, one module each."""

from __future__ import annotations

from pathlib import Path

from keel_tool_gateway.domain.ports import OutboxPort
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.domain.tools.calculator import CALCULATOR
from keel_tool_gateway.domain.tools.clock import make_clock
from keel_tool_gateway.domain.tools.count import make_count
from keel_tool_gateway.domain.tools.noop import NOOP
from keel_tool_gateway.domain.tools.send_email import make_send_email


def builtin_registry(
    default_timeout_s: float = 10.0,
    *,
    outbox: OutboxPort | None = None,
    test_tools_dir: Path | None = None,
) -> ToolRegistry:
    """The built-in tools; ``send_email`` only with an outbox, ``count`` only with a test
    directory (it exists for crash tests and must not be in a production catalog)."""
    registry = ToolRegistry(default_timeout_s)
    for tool in (CALCULATOR, make_clock(), NOOP):
        registry.register(tool)
    if outbox is not None:
        registry.register(make_send_email(outbox))
    if test_tools_dir is not None:
        registry.register(make_count(test_tools_dir))
    return registry


__all__ = ["builtin_registry"]
