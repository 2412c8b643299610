"""Keel as a server to other agents: an MCP server and an A2A endpoint that run Keel's agents
over the agent loop's gRPC front door as the caller (docs/agents-server.md)."""

from keel_agents_server.app import AgentsServer, build, serving
from keel_agents_server.config import AgentsServerSettings

__all__ = ["AgentsServer", "AgentsServerSettings", "build", "serving"]
