"""MCP servers' tools as gateway tools (official ``mcp`` SDK; stdio and streamable HTTP)."""

from keel_tool_gateway.adapters.mcp.mount import McpMounts, mount_mcp_servers
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings, McpSettings

__all__ = ["McpMounts", "McpServerSettings", "McpSettings", "mount_mcp_servers"]
