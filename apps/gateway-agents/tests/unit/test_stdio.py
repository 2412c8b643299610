"""MCP over stdio, as a local client spawns it: the SDK's own client talks to
``python -m keel_agents_server --stdio``. stdio carries no headers, so the token comes from
``KEEL_AGENTS_TOKEN``, and without one every tool is refused before the agent loop is called."""

from __future__ import annotations

import os
import sys

import mcp_types
from mcp import Client, StdioServerParameters


def _server(token: str = "") -> StdioServerParameters:
    env = {
        **os.environ,
        "KEEL_AGENTS_AGENT_LOOP_TARGET": "127.0.0.1:9",  # nothing listens: no call may be needed
        "KEEL_AGENTS_TOKEN": token,
    }
    return StdioServerParameters(
        command=sys.executable, args=["-m", "keel_agents_server", "--stdio"], env=env
    )


async def test_stdio_lists_the_tools_and_refuses_a_call_without_a_token() -> None:
    async with Client(_server()) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {"run_agent", "get_session", "run_plan", "get_plan"}
        refused = await client.call_tool("get_session", {"session_id": "s1"})
    assert refused.is_error
    text = " ".join(c.text for c in refused.content if isinstance(c, mcp_types.TextContent))
    assert "a bearer token is required" in text
