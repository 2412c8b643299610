"""One live MCP client connection, held open by a task of its own.

The SDK's ``Client`` is an async context manager whose transport runs in an anyio task group;
entering it in a start hook and leaving it in a stop hook (different tasks) would break anyio's
cancel scopes. So one task enters it, reports the tool list, and holds it until ``aclose``;
calls from any task go through the open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from keel_tool_gateway.adapters.mcp.settings import McpServerSettings
from keel_tool_gateway.domain.registry import ToolError

log = logging.getLogger(__name__)


class McpConnection:
    def __init__(self, settings: McpServerSettings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> list[mcp_types.Tool]:
        """Connect and list every tool; raises if that fails within ``connect_timeout_s``."""
        ready: asyncio.Future[list[mcp_types.Tool]] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready), name=f"mcp-{self.settings.name}")
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                return await asyncio.shield(ready)
        except BaseException:
            await self.aclose()
            raise

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """The tool's text output; a tool error, protocol error or lost server is a ToolError."""
        client = self._client
        if client is None:
            raise ToolError(f"MCP server {self.settings.name!r} is not connected")
        try:
            # A backstop: the gateway's own time-out (the same value) normally fires first.
            result = await client.call_tool(
                tool, arguments, read_timeout_seconds=self.settings.timeout_s + 1.0
            )
        except MCPError as exc:
            raise ToolError(f"MCP server {self.settings.name!r}: {exc}") from exc
        except (OSError, EOFError, RuntimeError) as exc:
            raise ToolError(
                f"MCP server {self.settings.name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        text = render(result)
        if result.is_error:
            raise ToolError(text or "the MCP tool reported an error")
        return text

    async def aclose(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(5.0):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception as exc:  # noqa: BLE001 - closing must not fail the shutdown
            log.warning("MCP server %s closed with an error: %r", self.settings.name, exc)

    async def _hold(self, ready: asyncio.Future[list[mcp_types.Tool]]) -> None:
        try:
            async with self._connect() as client:
                tools = await _list_all(client)
                self._client = client
                if not ready.done():
                    ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                log.error("MCP server %s connection ended: %r", self.settings.name, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._client = None

    def _connect(self) -> Client:
        server = self.settings
        if server.transport == "stdio":
            params = StdioServerParameters(
                command=server.command,
                args=server.args,
                env=server.env or None,
                cwd=server.cwd,
            )
            return Client(params)
        http = httpx2.AsyncClient(headers=server.headers) if server.headers else None
        return Client(streamable_http_client(server.url, http_client=http))


async def _list_all(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def render(result: mcp_types.CallToolResult) -> str:
    """Text blocks joined by newlines; other blocks named; structured content as JSON when
    there is no text."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            mime = getattr(block, "mime_type", "") or ""
            parts.append(f"[{block.type} content{' ' + mime if mime else ''} not shown]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True)
    return "\n".join(parts)
