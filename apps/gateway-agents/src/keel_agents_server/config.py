"""The server's one settings object (``KEEL_AGENTS_*``), built once in ``main``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_core.trust import TrustSettings


class AgentsServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_AGENTS_", extra="ignore")

    # Loopback unless told otherwise: the server answers with other people's agents.
    host: str = "127.0.0.1"
    port: int = 8790
    # The agent loop's gRPC front door; every call is made there as the caller.
    agent_loop_target: str = "127.0.0.1:50051"
    # Host names answered (others get 400): a DNS-rebinding page cannot reach 127.0.0.1 under
    # its own name. A port in the Host header is ignored.
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    # The agent profiles offered: the A2A card's skills and the profiles run_agent accepts
    # ("" = the agent loop's default profile).
    profiles: list[str] = Field(default_factory=lambda: ["default"])
    # How long run_agent / message/send wait for a session to finish.
    run_timeout_s: float = 300.0
    # The address the A2A card names (the public URL when behind a proxy); empty: built from
    # host and port.
    public_url: str = ""
    # stdio only (a local MCP client spawns the server): the caller's token, since stdio
    # carries no headers. Verified like any other.
    token: str = Field(default="", repr=False)
    trust: TrustSettings = Field(default_factory=TrustSettings)
