"""Mount the tools of configured MCP servers in the gateway's registry.

Each tool becomes an ordinary registry entry named ``mcp.<server>.<tool>``: the gateway
validates its arguments (against the tool's JSON schema), asks policy (rules on ``mcp.*``),
applies the server's time-out and audits it exactly as it does a built-in tool.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import mcp_types

from keel_contracts.errors import ConfigError
from keel_tool_gateway.adapters.mcp.connection import McpConnection
from keel_tool_gateway.adapters.mcp.schema import JsonSchemaInput, input_model_for
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings, McpSettings
from keel_tool_gateway.domain.registry import Tool, ToolRegistry

log = logging.getLogger(__name__)

PREFIX = "mcp"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class McpMounts:
    """The live connections and the names they registered; ``aclose`` undoes both."""

    registry: ToolRegistry
    connections: list[McpConnection] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)
    # server name -> why it was not mounted
    failed: dict[str, str] = field(default_factory=dict)

    async def aclose(self) -> None:
        for name in self.tool_names:
            self.registry.unregister(name)
        self.tool_names.clear()
        for connection in reversed(self.connections):
            await connection.aclose()
        self.connections.clear()


async def mount_mcp_servers(settings: McpSettings, registry: ToolRegistry) -> McpMounts:
    """Connect to every server, list its tools and register the allowed ones.

    A server that fails is logged and skipped unless it is ``required`` (then ConfigError,
    after closing what was opened).
    """
    mounts = McpMounts(registry)
    for server in settings.servers:
        try:
            await _mount_one(server, mounts)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            mounts.failed[server.name] = reason
            if server.required:
                await mounts.aclose()
                raise ConfigError(
                    f"MCP server {server.name!r} could not be mounted: {reason}"
                ) from exc
            log.error("MCP server %s not mounted: %s", server.name, reason)
    return mounts


async def _mount_one(server: McpServerSettings, mounts: McpMounts) -> None:
    connection = McpConnection(server)
    listed = await connection.open()
    mounts.connections.append(connection)
    for remote in listed:
        if not any(fnmatchcase(remote.name, pattern) for pattern in server.tools):
            continue
        if not TOOL_NAME.match(remote.name):
            log.warning("MCP server %s: tool name %r skipped", server.name, remote.name)
            continue
        tool = mcp_tool(connection, remote)
        mounts.registry.register(tool)
        mounts.tool_names.append(tool.name)
    log.info("MCP server %s mounted %d tool(s)", server.name, len(mounts.tool_names))


def mcp_tool(connection: McpConnection, remote: mcp_types.Tool) -> Tool[JsonSchemaInput]:
    server = connection.settings
    name = f"{PREFIX}.{server.name}.{remote.name}"
    schema: dict[str, Any] = dict(remote.input_schema or {"type": "object"})
    model = input_model_for(f"Mcp_{server.name}_{remote.name}", schema)

    async def run(args: JsonSchemaInput) -> str:
        return await connection.call(remote.name, args.arguments())

    return Tool(
        name=name,
        description=(remote.description or remote.title or remote.name).strip(),
        input_model=model,
        run=run,
        timeout_s=server.timeout_s,
        parameters_schema=schema,
    )
