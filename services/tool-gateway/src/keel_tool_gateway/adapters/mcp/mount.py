"""Mount the tools of configured MCP servers in the gateway's registry.

Each tool becomes an ordinary registry entry named ``mcp.<server>.<tool>``: the gateway
validates its arguments (against the tool's JSON schema), asks policy (rules on ``mcp.*``),
applies the server's time-out and audits it exactly as it does a built-in tool.

What a server says about its tools is untrusted: each description reaches the model marked
as such (``mark_untrusted_description``), and each tool is pinned by the hash of its name,
description and schema at its first mount (``pins.py``). Every later tool list (a restart,
a reconnect, the server's ``tools/list_changed``) is checked again: a changed tool is
unmounted and refused until an operator accepts it, the server's other tools stay. Pins,
refusals and acceptances are reported to ``on_event`` (the service audits them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import mcp_types

from keel_contracts.errors import ConfigError
from keel_contracts.untrusted import mark_untrusted_description
from keel_tool_gateway.adapters.mcp.connection import McpConnection
from keel_tool_gateway.adapters.mcp.pages import PAGE_TOOL, OutputPages, page_tool
from keel_tool_gateway.adapters.mcp.pins import PinCheck, PinStore, tool_digest
from keel_tool_gateway.adapters.mcp.schema import JsonSchemaInput, input_model_for
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings, McpSettings
from keel_tool_gateway.domain.registry import Tool, ToolRegistry

log = logging.getLogger(__name__)

PREFIX = "mcp"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Room for a page's closing note beyond its cap.
PAGE_NOTE_CHARS = 300
DEFAULT_OUTPUT_CHARS = 8000

# (action, server, details): "mcp.tool.pinned", "mcp.tool.refused", "mcp.tool.accepted".
McpEvent = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class McpMounts:
    """The live connections and the names they registered; ``aclose`` undoes both."""

    registry: ToolRegistry
    connections: list[McpConnection] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)
    # server name -> why it was not mounted
    failed: dict[str, str] = field(default_factory=dict)
    # server name -> {tool: new hash} refused because it changed since it was pinned
    refused: dict[str, dict[str, str]] = field(default_factory=dict)
    servers: dict[str, ServerMount] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        """False while a ``required`` server is down: the gateway's health should say
        NOT_SERVING then (its tools answer UNAVAILABLE meanwhile)."""
        return all(
            mount.connection.connected for mount in self.servers.values() if mount.settings.required
        )

    async def aclose(self) -> None:
        for name in self.tool_names:
            self.registry.unregister(name)
        self.tool_names.clear()
        for connection in reversed(self.connections):
            await connection.aclose()
        self.connections.clear()


async def mount_mcp_servers(
    settings: McpSettings,
    registry: ToolRegistry,
    *,
    on_event: McpEvent | None = None,
    on_health: Callable[[bool], None] | None = None,
    default_output_chars: int = DEFAULT_OUTPUT_CHARS,
) -> McpMounts:
    """Connect to every server, list its tools and register the allowed, unchanged ones.

    A server that fails is logged and skipped unless it is ``required`` (then ConfigError,
    after closing what was opened). ``on_health`` hears ``McpMounts.serving`` each time a
    server goes down or comes back.
    """
    mounts = McpMounts(registry)
    pins = PinStore(settings.pin_dir)
    if settings.pin_dir is None and settings.servers:
        log.warning("MCP tool pins are kept in memory only (set mcp.pin_dir to keep them)")
    pages = OutputPages()

    def state_changed(_: bool) -> None:
        if on_health is not None:
            on_health(mounts.serving)

    for server in settings.servers:
        mount = ServerMount(
            server, mounts, pins, pages, on_event, state_changed, default_output_chars
        )
        if server.isolation == "none":
            # An operator's explicit choice, but one a reviewer of the audit log must see: the
            # server's code runs with the gateway's uid, network and files.
            await mount._event("mcp.server.unboxed", "*", {"isolation": "none"})
        try:
            await mount.open()
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


class ServerMount:
    """One server's tools in the registry, kept in step with its tool lists."""

    def __init__(
        self,
        settings: McpServerSettings,
        mounts: McpMounts,
        pins: PinStore,
        pages: OutputPages,
        on_event: McpEvent | None,
        on_state: Callable[[bool], None],
        default_output_chars: int,
    ) -> None:
        self.settings = settings
        self._mounts = mounts
        self._pins = pins
        self._pages = pages
        self._on_event = on_event
        self._default_output_chars = default_output_chars
        self._registered: dict[str, str] = {}  # registry name -> digest
        # Refused changes already reported (tool -> new digest): a refused tool is listed again
        # at every check until accepted, and is logged and audited once per change.
        self._reported: dict[str, str] = {}
        self.connection = McpConnection(
            settings,
            on_tools=self.apply,
            on_state=on_state,
            wants_relist=lambda: settings.name in mounts.refused,
        )

    async def open(self) -> None:
        listed = await self.connection.open()
        try:
            await self.apply(listed)
        except BaseException:
            for name in list(self._registered):
                self._unregister(name)
            await self.connection.aclose()
            raise
        self._mounts.connections.append(self.connection)
        self._mounts.servers[self.settings.name] = self
        caps = [self.output_chars(""), *self.settings.tool_max_output_chars.values()]
        reader = page_tool(self.settings.name, PREFIX, self._pages, max(caps) + PAGE_NOTE_CHARS)
        self._mounts.registry.register(reader)
        self._mounts.tool_names.append(reader.name)

    async def apply(self, listed: list[mcp_types.Tool]) -> None:
        """Mount what ``listed`` allows: tools on the allow-list, well named, and unchanged
        since pinned. Tools no longer allowed (changed, or gone) are unmounted."""
        server = self.settings
        wanted = self._wanted(listed)
        digests = {name: _digest(remote) for name, remote in wanted.items()}
        check = self._pins.check(
            server.name, {name: (digests[name], _raw(r)) for name, r in wanted.items()}
        )
        refused = {name: new for name, (_, new) in check.refused.items()}
        if refused:
            self._mounts.refused[server.name] = refused
        else:
            self._mounts.refused.pop(server.name, None)
        await self._report(check, digests)
        allowed = {f"{PREFIX}.{server.name}.{name}": name for name in check.allowed}
        for registered in list(self._registered):
            if self._registered[registered] != digests.get(allowed.get(registered, ""), ""):
                self._unregister(registered)
        for full, name in allowed.items():
            if full not in self._registered:
                self._register(mcp_tool(self.connection, wanted[name], self), digests[name])
        log.info(
            "MCP server %s mounted %d tool(s)%s",
            server.name,
            len(self._registered),
            f", refused {len(refused)} changed" if refused else "",
        )

    def _wanted(self, listed: list[mcp_types.Tool]) -> dict[str, mcp_types.Tool]:
        """The listed tools on the server's allow-list with a usable name."""
        server, wanted = self.settings, {}
        for remote in listed:
            if not any(fnmatchcase(remote.name, pattern) for pattern in server.tools):
                continue
            if not TOOL_NAME.match(remote.name) or remote.name == PAGE_TOOL:
                log.warning("MCP server %s: tool name %r skipped", server.name, remote.name)
                continue
            wanted[remote.name] = remote
        return wanted

    async def _report(self, check: PinCheck, digests: dict[str, str]) -> None:
        """Audit what the check pinned, found accepted and refused (each change once)."""
        server = self.settings.name
        for name in check.pinned:
            await self._event("mcp.tool.pinned", name, {"sha256": digests[name]})
        for name, by in check.accepted.items():
            await self._event("mcp.tool.accepted", name, {"sha256": digests[name], "by": by})
        for name in check.allowed:
            self._reported.pop(name, None)
        for name, (old, new) in check.refused.items():
            if self._reported.get(name) == new:
                continue
            self._reported[name] = new
            log.warning(
                "MCP server %s: tool %s changed since it was pinned; refused until accepted "
                "(keel mcp accept %s %s)",
                server,
                name,
                server,
                name,
            )
            await self._event("mcp.tool.refused", name, {"pinned_sha256": old, "sha256": new})

    def output_chars(self, tool: str) -> int:
        return self.settings.output_cap(tool, self._default_output_chars)

    def first_page(self, tool: str, text: str) -> str:
        reader = f"{PREFIX}.{self.settings.name}.{PAGE_TOOL}"
        return self._pages.first_page(tool, reader, text, self.output_chars(tool))

    def _register(self, tool: Tool[JsonSchemaInput], digest: str) -> None:
        self._mounts.registry.register(tool)
        self._mounts.tool_names.append(tool.name)
        self._registered[tool.name] = digest

    def _unregister(self, name: str) -> None:
        self._mounts.registry.unregister(name)
        if name in self._mounts.tool_names:
            self._mounts.tool_names.remove(name)
        del self._registered[name]

    async def _event(self, action: str, tool: str, details: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        subject = f"{PREFIX}.{self.settings.name}.{tool}"
        try:
            await self._on_event(action, subject, {"server": self.settings.name, **details})
        except Exception as exc:  # noqa: BLE001 - the decision stands; the record is logged
            log.error("MCP event %s for %s could not be recorded: %r", action, subject, exc)


def mcp_tool(
    connection: McpConnection, remote: mcp_types.Tool, mount: ServerMount | None = None
) -> Tool[JsonSchemaInput]:
    server = connection.settings
    name = f"{PREFIX}.{server.name}.{remote.name}"
    schema: dict[str, Any] = dict(remote.input_schema or {"type": "object"})
    model = input_model_for(f"Mcp_{server.name}_{remote.name}", schema)
    cap = mount.output_chars(remote.name) if mount is not None else None

    async def run(args: JsonSchemaInput) -> str:
        text = await connection.call(remote.name, args.arguments())
        return mount.first_page(remote.name, text) if mount is not None else text

    return Tool(
        name=name,
        description=mark_untrusted_description(f"MCP server {server.name!r}", _raw(remote)),
        input_model=model,
        run=run,
        timeout_s=server.timeout_s,
        parameters_schema=schema,
        max_output_chars=None if cap is None else cap + PAGE_NOTE_CHARS,
    )


def _raw(remote: mcp_types.Tool) -> str:
    return (remote.description or remote.title or remote.name).strip()


def _digest(remote: mcp_types.Tool) -> str:
    return tool_digest(remote.name, remote.description or "", dict(remote.input_schema or {}))
