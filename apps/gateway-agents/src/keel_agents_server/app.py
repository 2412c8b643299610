"""The composition root: one HTTP app serving MCP (streamable HTTP, ``/mcp``) and A2A (card and
``/a2a``) behind the Host allow-list and bearer authentication, or MCP over stdio for a local
client that spawns the server (``--stdio``; the token comes from ``KEEL_AGENTS_TOKEN``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from keel_agents_server.a2a import A2AEndpoint
from keel_agents_server.auth import Authenticator, GuardMiddleware
from keel_agents_server.config import AgentsServerSettings
from keel_agents_server.front_door import AgentFrontDoor
from keel_agents_server.mcp_tools import build_mcp
from keel_contracts.errors import ConfigError
from keel_core.grpc import ClientCredentials, secure_channel
from keel_core.grpc.tokens import TokenVerifier
from keel_core.trust import AGENTS_SERVER, TrustMaterial

# The agent loop's port is mutual TLS; this server's own certificate (keel_core.trust, no row
# of the authorization table names it) opens the connection and names it as the transport in
# what the agent loop audits. Every call carries the caller's token and is judged by it alone
# (no call is made without one).
TRANSPORT_IDENTITY = AGENTS_SERVER
MCP_PATH = "/mcp"


@dataclass
class AgentsServer:
    app: ASGIApp
    mcp: MCPServer
    channel: grpc.aio.Channel


def build(settings: AgentsServerSettings) -> AgentsServer:
    """Wire every part; start nothing. Refuses to run without trust material: there would be
    no key to check a caller's token with."""
    if settings.trust.dir is None:  # KEEL_TRUST_INSECURE_DEV included: nothing to verify with
        raise ConfigError(
            "the agents server needs KEEL_TRUST_DIR (the keys that callers' tokens are checked "
            "with); it has no insecure mode"
        )
    material = TrustMaterial(settings.trust.dir)
    verifier = TokenVerifier(
        material.token_verify_keys(settings.trust),
        issuer=settings.trust.token_issuer,
        audience=settings.trust.token_audience,
    )
    authenticator = Authenticator(verifier)
    try:
        identity = material.tls_identity(TRANSPORT_IDENTITY)
    except ConfigError as exc:  # a directory made before this server had an identity
        raise ConfigError(
            f"{exc}; `keel dev trust {settings.trust.dir}` adds the {TRANSPORT_IDENTITY} "
            "certificate (existing keys are kept)"
        ) from exc
    channel = secure_channel(settings.agent_loop_target, ClientCredentials(identity))
    front_door = AgentFrontDoor(channel, settings.run_timeout_s)
    mcp = build_mcp(front_door, authenticator, settings.profiles, settings.token)
    a2a = A2AEndpoint(front_door, authenticator, settings.profiles, public_url(settings))
    for route in a2a.routes():
        mcp.custom_route(route.path, methods=sorted(route.methods or ["GET"]))(route.endpoint)
    # Host checks are ours (GuardMiddleware, before authentication), for MCP and A2A alike.
    # Stateless: no MCP session outlives its request, so nothing one caller set up is reachable
    # by another, and replicas need no shared session state. Each tool call reads its own
    # request's token.
    http = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=settings.host,
    )
    app = GuardMiddleware(http, authenticator, settings.allowed_hosts)
    return AgentsServer(app=app, mcp=mcp, channel=channel)


def public_url(settings: AgentsServerSettings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


@contextlib.asynccontextmanager
async def serving(settings: AgentsServerSettings) -> AsyncIterator[str]:
    """The HTTP server running in this event loop until the block ends; yields its base URL.

    The socket is bound and listening before the block starts (port 0: a free one), so a
    client may connect at once: the kernel queues it until uvicorn accepts.
    """
    with socket.create_server((settings.host, settings.port)) as sock:
        host, port = sock.getsockname()[:2]
        if not settings.public_url:
            settings = settings.model_copy(update={"port": port})
        parts = build(settings)
        server = uvicorn.Server(uvicorn.Config(parts.app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await task
            await parts.channel.close()


async def serve_stdio(settings: AgentsServerSettings) -> None:
    parts = build(settings)
    try:
        await parts.mcp.run_stdio_async()
    finally:
        await parts.channel.close()


async def serve_http(settings: AgentsServerSettings) -> None:
    """Until SIGTERM/SIGINT: uvicorn stops taking requests, finishes those in flight, exits."""
    parts = build(settings)
    config = uvicorn.Config(
        parts.app, host=settings.host, port=settings.port, log_level="info", lifespan="on"
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await parts.channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="keel-agents-server",
        description="Keel's agents over MCP (/mcp, or --stdio) and A2A (/a2a), as the caller.",
    )
    parser.add_argument("--stdio", action="store_true", help="serve MCP on stdin/stdout")
    args = parser.parse_args()
    settings = AgentsServerSettings()
    try:
        asyncio.run(serve_stdio(settings) if args.stdio else serve_http(settings))
    except ConfigError as exc:  # one line and exit 2, as every service refuses to start
        print(f"keel-agents-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
