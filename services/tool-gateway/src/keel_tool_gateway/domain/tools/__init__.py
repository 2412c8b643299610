"""Built-in tools, one module each."""

from __future__ import annotations

from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.domain.tools.calculator import CALCULATOR
from keel_tool_gateway.domain.tools.clock import make_clock
from keel_tool_gateway.domain.tools.noop import NOOP


def builtin_registry(default_timeout_s: float = 10.0) -> ToolRegistry:
    registry = ToolRegistry(default_timeout_s)
    for tool in (CALCULATOR, make_clock(), NOOP):
        registry.register(tool)
    return registry


__all__ = ["builtin_registry"]
