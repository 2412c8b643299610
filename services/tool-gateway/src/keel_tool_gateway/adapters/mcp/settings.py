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
    # is logged and skipped (its tools are simply absent).
    required: bool = False

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSettings:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: stdio needs a command")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: http needs an http(s) url")
        return self


class McpSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: list[McpServerSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> McpSettings:
        names = [server.name for server in self.servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"MCP server names must be unique: {', '.join(duplicates)}")
        return self
