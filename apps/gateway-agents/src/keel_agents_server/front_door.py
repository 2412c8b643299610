"""The agent loop's front door, called as the caller: every Submit, StreamEvents, Get,
SubmitPlan and GetPlan carries the caller's own bearer token, so the agent loop's interceptor
sets tenant, profile and roles from it and policy, audit and budgets apply exactly as to a
gRPC caller.

The channel presents this server's own certificate (``agents-server``) because the agent
loop's port is mutual TLS: a call that carries a token is judged by the token alone
(docs/security.md, gRPC), the certificate alone admits nothing, and no call leaves here
without one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import grpc

from keel_clients import AgentClient, CallOptions
from keel_contracts.sessions import SessionEvent, SessionView, TaskRequest

OnEvent = Callable[[SessionEvent], Awaitable[None]]


class AgentFrontDoor:
    def __init__(self, channel: grpc.aio.Channel, run_timeout_s: float) -> None:
        self._channel = channel
        self._run_timeout_s = run_timeout_s

    def _client(self, token: str) -> AgentClient:
        if not token:
            raise ValueError("the agent loop is only ever called with the caller's token")
        return AgentClient(self._channel, CallOptions(token=token))

    async def run(
        self, token: str, goal: str, profile: str = "", on_event: OnEvent | None = None
    ) -> SessionView:
        """Submit, follow the session's events until it finishes, then read its result.

        A session still running after ``run_timeout_s`` is returned as it stands (status
        running, the session id to ask again with), not as an error: it keeps running.
        """
        client = self._client(token)
        session_id = await client.submit(TaskRequest(goal=goal, agent_profile=profile))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._run_timeout_s):
                async for event in client.stream_events(session_id):
                    if on_event is not None:
                        await on_event(event)
        return await client.get(session_id)

    async def get(self, token: str, session_id: str) -> SessionView:
        return await self._client(token).get(session_id)

    async def run_plan(self, token: str, plan_json: str) -> SessionView:
        """Submit a plan as the caller and wait for its answer (its id is the view's session
        id). A plan still running after ``run_timeout_s`` is returned as it stands (running):
        it keeps running, ask again with ``get_plan``."""
        client = self._client(token)
        plan_id = await client.submit_plan(plan_json)
        return await client.get_plan(plan_id, wait_s=self._run_timeout_s)

    async def get_plan(self, token: str, plan_id: str) -> SessionView:
        return await self._client(token).get_plan(plan_id)
