"""Settings of the MCP mounts (env ``KEEL_TOOL_GATEWAY_MCP__SERVERS``, a JSON list)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SERVER_NAME = r"^[A-Za-z0-9_-]{1,32}$"


class McpServerSettings(BaseModel):
    """One MCP server whose tools are mounted as ``mcp.<name>.<tool>``.

    ``stdio``: ``command`` + ``args`` are spawned as a child process with a scrubbed
    environment (the MCP SDK passes only HOME, PATH, SHELL, TERM, USER, LOGNAME) plus ``env``.
    ``http``: streamable HTTP at ``url`` (e.g. ``http://127.0.0.1:8000/mcp``), with ``headers``
    on every request (for a bearer token).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=SERVER_NAME)
    transport: Literal["stdio", "http"]
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    # Globs over the server's own tool names; only matching tools are mounted.
    tools: list[str] = Field(default_factory=lambda: ["*"])
    # Time-out of each call (the gateway's time-out for these tools).
    timeout_s: float = Field(default=30.0, gt=0)
    # Time to connect and list the tools at start-up.
    connect_timeout_s: float = Field(default=20.0, gt=0)
    # If true, a server that cannot be mounted stops the gateway from starting; otherwise it
    # is logged and skipped (its tools are simply absent). A required server that goes down
    # later makes the gateway's health NOT_SERVING until it is back (``McpMounts.serving``).
    required: bool = False
    # Output cap of this server's tools (characters); None: the gateway's max_output_chars.
    # A longer output is cut to this size and the rest can be read page by page
    # (``mcp.<server>._output_page``).
    max_output_chars: int | None = Field(default=None, ge=100)
    # Per-tool caps (the server's own tool names), over max_output_chars.
    tool_max_output_chars: dict[str, int] = Field(default_factory=dict)
    # How often a connected server is checked (its tools listed); a failed check (or a call
    # that finds the connection closed) marks it down: WARNING, its tools answer UNAVAILABLE,
    # and it is reconnected with exponential backoff from reconnect_initial_s up to
    # reconnect_max_s.
    check_interval_s: float = Field(default=5.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSettings:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: stdio needs a command")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: http needs an http(s) url")
        if any(cap < 100 for cap in self.tool_max_output_chars.values()):
            raise ValueError(f"MCP server {self.name!r}: tool output caps must be >= 100")
        return self

    def output_cap(self, tool: str, default: int) -> int:
        """The cap of ``tool``'s output: its own, else the server's, else ``default``."""
        return self.tool_max_output_chars.get(tool) or self.max_output_chars or default


class McpSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: list[McpServerSettings] = Field(default_factory=list)
    # Where each server's tool pins live (``<pin_dir>/<server>.json``, docs/mcp.md): the hash
    # of every tool's name, description and input schema, recorded at its first mount. A tool
    # whose hash changes later is refused until an operator runs ``keel mcp accept``. None:
    # pins are kept in memory only (a change is caught within one run, not across restarts).
    pin_dir: Path | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> McpSettings:
        names = [server.name for server in self.servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"MCP server names must be unique: {', '.join(duplicates)}")
        return self
