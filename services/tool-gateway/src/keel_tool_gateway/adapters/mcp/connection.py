"""One live MCP client connection, held open (and reopened) by a task of its own.

The SDK's ``Client`` is an async context manager whose transport runs in an anyio task group;
entering it in a start hook and leaving it in a stop hook (different tasks) would break anyio's
cancel scopes. So one task enters it, reports the tool list, and holds it until ``aclose``;
calls from any task go through the open session.

A server that dies does not end the client's context by itself (a dead stdio child just
leaves a closed pipe), so the holder lists its tools every ``check_interval_s`` (the
protocol's ping is gone from its newer versions; a listing also shows a changed tool even
when the server does not announce it) and also wakes when a call finds the connection
closed. Then the server is down: logged at WARNING, its calls answer ``ServerDown``
(UNAVAILABLE: nothing ran) and it is reconnected with exponential backoff. Every changed tool
list (a reconnect, a check, the server's ``tools/list_changed``) goes to ``on_tools``, which
checks it against the pins before anything is mounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from keel_tool_gateway.adapters.mcp.box import boxed_launch
from keel_tool_gateway.adapters.mcp.proxy import host_proxy
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings
from keel_tool_gateway.domain.registry import ToolError, ToolUnavailable

log = logging.getLogger(__name__)

ToolsListed = Callable[[list[mcp_types.Tool]], Awaitable[None]]
StateChanged = Callable[[bool], None]


class ServerDown(ToolUnavailable):
    """The server is not connected (it died or never answered): the call did not run, and the
    gateway answers UNAVAILABLE until the reconnect succeeds."""


class McpConnection:
    def __init__(
        self,
        settings: McpServerSettings,
        *,
        on_tools: ToolsListed | None = None,
        on_state: StateChanged | None = None,
        wants_relist: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._stop = asyncio.Event()
        # Set to wake the holder: the connection is lost, or the tool list changed.
        self._lost = asyncio.Event()
        self._relist = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The last tool list seen (as JSON-able data): a check that finds it unchanged is quiet.
        self._listed: list[dict[str, Any]] = []
        self._on_tools = on_tools
        self._on_state = on_state
        # Asked after each check: list the tools again (a refused tool may have been accepted).
        self._wants_relist = wants_relist

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def open(self) -> list[mcp_types.Tool]:
        """Connect and list every tool; raises if that fails within ``connect_timeout_s``.
        Once open, the connection is kept (reconnected) until ``aclose``."""
        ready: asyncio.Future[list[mcp_types.Tool]] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready), name=f"mcp-{self.settings.name}")
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                return await asyncio.shield(ready)
        except BaseException:
            await self.aclose()
            raise

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """The tool's text output. ``ServerDown`` when not connected (nothing ran); a tool
        error, protocol error or a server lost during the call is a ToolError."""
        client = self._client
        if client is None:
            raise ServerDown(
                f"MCP server {self.settings.name!r} is down (reconnecting); {tool} did not run"
            )
        try:
            # A backstop: the gateway's own time-out (the same value) normally fires first.
            result = await client.call_tool(
                tool, arguments, read_timeout_seconds=self.settings.timeout_s + 1.0
            )
        except MCPError as exc:
            if "closed" in str(exc).lower():
                self._lost.set()
            raise ToolError(f"MCP server {self.settings.name!r}: {exc}") from exc
        except (OSError, EOFError, RuntimeError) as exc:
            self._lost.set()
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
        """Connect, then keep the connection: reconnect with backoff after each loss."""
        name, delay = self.settings.name, self.settings.reconnect_initial_s
        while not self._stop.is_set():
            try:
                await self._session(ready)
                delay = self.settings.reconnect_initial_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(exc)
                    return
                log.warning("MCP server %s is down: %r; reconnecting in %.1fs", name, exc, delay)
            finally:
                self._set_client(None)
            if self._stop.is_set() or not ready.done():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _session(self, ready: asyncio.Future[list[mcp_types.Tool]]) -> None:
        """One connection, from connect to loss (raises) or stop (returns)."""
        async with self._proxy() as proxy_socket, self._connect(proxy_socket) as client:
            tools = await _list_all(client)
            self._listed = _dumped(tools)
            self._lost.clear()
            self._relist.clear()
            reconnect = ready.done()
            if reconnect and self._on_tools is not None:
                await self._on_tools(tools)
            self._set_client(client)
            if not ready.done():
                ready.set_result(tools)
            elif reconnect:
                log.warning("MCP server %s reconnected", self.settings.name)
            while not self._stop.is_set():
                await self._watch(client)

    async def _watch(self, client: Client) -> None:
        """Wait one check interval (or a wake-up), then list the server's tools: the check
        that it is alive (ping is gone from newer protocol versions) and that its tools are
        what was mounted. Raises when the server is lost."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.check_interval_s):
                await _first(self._stop.wait(), self._lost.wait(), self._relist.wait())
        if self._stop.is_set():
            return
        if self._lost.is_set():
            raise ConnectionError("a call found the connection closed")
        relist = self._relist.is_set() or (self._wants_relist is not None and self._wants_relist())
        self._relist.clear()
        async with asyncio.timeout(self.settings.check_interval_s + self.settings.timeout_s):
            tools = await _list_all(client)
        if (relist or _dumped(tools) != self._listed) and self._on_tools is not None:
            await self._on_tools(tools)
        self._listed = _dumped(tools)

    async def _on_message(self, message: object) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist.set()

    def _set_client(self, client: Client | None) -> None:
        changed = (client is None) != (self._client is None)
        self._client = client
        if changed and self._on_state is not None:
            self._on_state(client is not None)

    def _proxy(self) -> contextlib.AbstractAsyncContextManager[str | None]:
        """A boxed stdio server's proxy to its declared hosts, for as long as it runs."""
        server = self.settings
        boxed = server.transport == "stdio" and server.isolation == "box"
        return host_proxy(server.name, server.allowed_hosts if boxed else [])

    def _connect(self, proxy_socket: str | None = None) -> Client:
        server = self.settings
        if server.transport == "stdio":
            return Client(stdio_parameters(server, proxy_socket), message_handler=self._on_message)
        http = httpx2.AsyncClient(headers=server.headers) if server.headers else None
        return Client(
            streamable_http_client(server.url, http_client=http), message_handler=self._on_message
        )


def stdio_parameters(
    server: McpServerSettings, proxy_socket: str | None = None
) -> StdioServerParameters:
    """How a stdio server's process is spawned: the one place that does.

    Boxed by default (``box.boxed_launch``: the SDK spawns the box's launcher, which hands
    the server its stdin/stdout). ``isolation="none"`` spawns the server as a plain child of
    the gateway, warned at every (re)connect so it never goes unnoticed. ``proxy_socket``:
    the server's proxy to its declared hosts (required when it declares any).
    """
    if server.isolation == "box":
        launch = boxed_launch(server, proxy_socket=proxy_socket)
        return StdioServerParameters(command=launch.argv[0], args=launch.argv[1:], env=launch.env)
    log.warning(
        "MCP server %s runs WITHOUT isolation (isolation=none): the gateway's uid, network "
        "and files",
        server.name,
    )
    return StdioServerParameters(
        command=server.command,
        args=server.args,
        env=server.env or None,
        cwd=server.cwd,
    )


def _dumped(tools: list[mcp_types.Tool]) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json") for tool in tools]


async def _first(*waits: Awaitable[Any]) -> None:
    """Return when the first of ``waits`` does; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
