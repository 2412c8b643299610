"""Settings of the MCP mounts (env ``KEEL_TOOL_GATEWAY_MCP__SERVERS``, a JSON list)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keel_tool_gateway.adapters.mcp.proxy import parse_host

SERVER_NAME = r"^[A-Za-z0-9_-]{1,32}$"


class McpServerSettings(BaseModel):
    """One MCP server whose tools are mounted as ``mcp.<name>.<tool>``.

    ``stdio``: ``command`` + ``args`` are spawned inside a box (``isolation="box"``, the
    default; ``adapters/mcp/box.py``, docs/mcp.md "The box"): their own namespaces and uid, a
    minimal read-only root holding the runtime and ``read_only_paths``, writable only in
    ``writable_paths`` and a private scratch, no network but ``allowed_hosts`` (through the
    gateway's proxy), and exactly ``env`` (plus PATH, HOME, TMPDIR, LANG, and the proxy).
    ``isolation="none"`` spawns a plain child of the gateway (same uid, network and files;
    the MCP SDK passes HOME, PATH, SHELL, TERM, USER, LOGNAME plus ``env``): only for a
    server the operator trusts as much as the gateway, warned at mount.
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
    # The OS boundary of a stdio server: "box" (default) or "none" (a plain child process).
    isolation: Literal["box", "none"] = "box"
    # Host paths the boxed server may read (same path inside, read-only). None: derived from
    # the command (a Python interpreter: its virtualenv and installation, packages included;
    # another program: its own file) plus every absolute path in ``args`` that exists. Given:
    # the command's paths plus exactly these.
    read_only_paths: list[Path] | None = None
    # Host directories the boxed server may write (same path inside); the host directory must
    # be writable by ``uid`` (a root gateway) or by the gateway's user (a non-root one).
    writable_paths: list[Path] = Field(default_factory=list)
    # "host:port" a boxed server may reach, through the gateway's allow-listing proxy
    # (``proxy.py``; HTTP_PROXY/HTTPS_PROXY in the box). A name must resolve to public
    # addresses only; an address literal is taken as declared. Empty: no network at all.
    allowed_hosts: list[str] = Field(default_factory=list)
    # The uid/gid the boxed server runs as (a root gateway; a non-root one maps it onto its
    # own uid in a user namespace). Not the sandbox's 65534: its per-uid process limit
    # (RLIMIT_NPROC) would count the server's threads.
    uid: int = Field(default=65533, ge=1)
    gid: int = Field(default=65533, ge=1)
    # The box's private scratch (working directory, HOME, TMPDIR): a tmpfs of this size.
    scratch_mb: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSettings:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: stdio needs a command")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: http needs an http(s) url")
        declared = [*(self.read_only_paths or ()), *self.writable_paths]
        if any(not path.is_absolute() for path in declared):
            raise ValueError(f"MCP server {self.name!r}: declared paths must be absolute")
        for entry in self.allowed_hosts:
            parse_host(entry)
        if self.allowed_hosts and self.isolation != "box":
            raise ValueError(f"MCP server {self.name!r}: allowed_hosts needs isolation 'box'")
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
