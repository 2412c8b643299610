"""Built-in tools, one module each: the concrete tools behind the domain's ``Tool`` (arithmetic,
clock, HTTP, files, memory, the sandbox, the outbox)."""

from __future__ import annotations

from pathlib import Path

from keel_tool_gateway.adapters.sandbox import SandboxSettings
from keel_tool_gateway.adapters.tools.calculator import CALCULATOR
from keel_tool_gateway.adapters.tools.clock import make_clock
from keel_tool_gateway.adapters.tools.count import make_count
from keel_tool_gateway.adapters.tools.files import FileSettings, make_file_tools
from keel_tool_gateway.adapters.tools.http_fetch import HttpFetchSettings, make_http_fetch
from keel_tool_gateway.adapters.tools.memory_tools import make_memory_tools
from keel_tool_gateway.adapters.tools.noop import NOOP
from keel_tool_gateway.adapters.tools.python_exec import python_tool
from keel_tool_gateway.adapters.tools.send_email import make_send_email
from keel_tool_gateway.adapters.tools.unreliable import make_unreliable_tools
from keel_tool_gateway.domain.ports import MemoryPort, OutboxPort
from keel_tool_gateway.domain.registry import ProfileSettings, ToolRegistry


def builtin_registry(
    default_timeout_s: float = 10.0,
    *,
    outbox: OutboxPort | None = None,
    test_tools_dir: Path | None = None,
    profiles: ProfileSettings | None = None,
    http_fetch: HttpFetchSettings | None = None,
    files: FileSettings | None = None,
    memory: MemoryPort | None = None,
    sandbox: SandboxSettings | None = None,
) -> ToolRegistry:
    """The built-in tools; ``send_email`` only with an outbox, ``count`` and the fallback pair
    ``unreliable``/``unreliable_mirror`` only with a test directory (they exist for stack tests
    and must not be in a production catalog), the others
    when their settings or ports are given."""
    registry = ToolRegistry(default_timeout_s, profiles)
    for tool in (CALCULATOR, make_clock(), NOOP):
        registry.register(tool)
    if outbox is not None:
        registry.register(make_send_email(outbox))
    if http_fetch is not None:
        registry.register(make_http_fetch(http_fetch))
    for tool in make_file_tools(files) if files is not None else []:
        registry.register(tool)
    for tool in make_memory_tools(memory) if memory is not None else []:
        registry.register(tool)
    if sandbox is not None:
        registry.register(python_tool(sandbox))
    if test_tools_dir is not None:
        registry.register(make_count(test_tools_dir))
        registry.register(make_count(test_tools_dir, keyed=False))
        for test_tool in make_unreliable_tools():
            registry.register(test_tool)
    return registry


__all__ = ["builtin_registry"]
