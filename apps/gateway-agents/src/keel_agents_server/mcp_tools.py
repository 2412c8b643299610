"""The MCP server: Keel's agents as tools of any MCP client (streamable HTTP or stdio).

``run_agent`` submits over the agent loop's front door as the caller and waits for the
answer, reporting each session event as an MCP progress notification; ``get_session`` reads
a session (another tenant's is "not found", as over gRPC). ``run_plan`` submits a multi-agent
plan (YAML or JSON) the same way, as the caller's tenant, and waits for its answer;
``get_plan`` reads one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from keel_agents_server.auth import Authenticator, Caller
from keel_agents_server.front_door import AgentFrontDoor
from keel_agents_server.plans import plan_json
from keel_contracts.errors import KeelError, Unauthenticated
from keel_contracts.sessions import SessionEvent, SessionView

NAME = "keel-agents"


def build_mcp(
    front_door: AgentFrontDoor,
    authenticator: Authenticator,
    profiles: list[str],
    stdio_token: str = "",
) -> MCPServer:
    server = MCPServer(
        NAME,
        instructions="Run Keel agents: each call runs under your own token's tenant and roles.",
        log_level="WARNING",
    )

    def caller(ctx: Context[Any, Any]) -> Caller:
        """Over HTTP the request's own bearer token; over stdio (no headers) the configured
        one. Either is verified here; a refusal is a tool error naming why."""
        headers = ctx.headers
        try:
            if headers is None:
                return authenticator.caller(stdio_token)
            return authenticator.from_headers(headers)
        except Unauthenticated as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def run_agent(goal: str, ctx: Context[Any, Any], profile: str = "") -> dict[str, Any]:
        """Run a Keel agent on a goal and return its answer (waits until the session ends).

        ``profile``: one of the offered agent profiles; empty for the default one.
        """
        if profile and profile not in profiles:
            raise ToolError(f"unknown profile {profile!r}; offered: {', '.join(profiles)}")
        who = caller(ctx)
        steps = 0

        async def progress(event: SessionEvent) -> None:
            nonlocal steps
            steps += 1
            await ctx.report_progress(steps, message=f"{event.type} (iteration {event.iteration})")

        try:
            view = await front_door.run(who.token, goal, profile, progress)
        except KeelError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc
        return session_json(view)

    @server.tool()
    async def get_session(session_id: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """A session's status and answer (only sessions of your own tenant)."""
        who = caller(ctx)
        try:
            return session_json(await front_door.get(who.token, session_id))
        except KeelError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc

    add_plan_tools(server, front_door, caller, profiles)
    return server


def add_plan_tools(
    server: MCPServer,
    front_door: AgentFrontDoor,
    caller: Callable[[Context[Any, Any]], Caller],
    profiles: list[str],
) -> None:
    """``run_plan`` and ``get_plan``, called as the request's caller like ``run_agent``."""

    @server.tool()
    async def run_plan(plan: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """Run a Keel multi-agent plan and return its answer (waits until the plan ends).

        ``plan``: the plan as YAML or JSON: ``{goal, max_parallel?, nodes: [{id, goal,
        depends_on?, agent_profile?, kind?, plan?, stance?, sampling?}]}``; a node's goal may
        quote ``{deps.<id>}`` (a dependency's output) and ``{plan.goal}``. Every session of
        the plan runs as your tenant.
        """
        who = caller(ctx)
        try:
            view = await front_door.run_plan(who.token, plan_json(plan, profiles))
        except KeelError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc
        return plan_view_json(view)

    @server.tool()
    async def get_plan(plan_id: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """A plan's status and answer (only plans of your own tenant)."""
        who = caller(ctx)
        try:
            return plan_view_json(await front_door.get_plan(who.token, plan_id))
        except KeelError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc


def plan_view_json(view: SessionView) -> dict[str, Any]:
    return {
        "plan_id": view.session_id,
        "status": view.status,
        "answer": view.answer,
        "error": view.error,
        "nodes_run": view.iterations,
    }


def session_json(view: SessionView) -> dict[str, Any]:
    return {
        "session_id": view.session_id,
        "status": view.status,
        "answer": view.answer,
        "error": view.error,
        "iterations": view.iterations,
    }
