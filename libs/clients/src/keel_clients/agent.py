"""Client of ``keel.agent.v1.AgentService``, the front door: submit a task, follow it, read
its result, cancel it; submit a plan and await its answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_clients.call import Caller, CallOptions
from keel_contracts.sessions import SessionEvent, SessionStatusView, SessionView, TaskRequest

STATUSES: dict[int, SessionStatusView] = {
    agent_pb2.SESSION_STATUS_PENDING: "pending",
    agent_pb2.SESSION_STATUS_RUNNING: "running",
    agent_pb2.SESSION_STATUS_COMPLETED: "completed",
    agent_pb2.SESSION_STATUS_FAILED: "failed",
    agent_pb2.SESSION_STATUS_CANCELLED: "cancelled",
}


class AgentClient:
    """Owns no channel: whoever opens it closes it."""

    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = agent_pb2_grpc.AgentServiceStub(channel)
        self._caller = Caller(options or CallOptions())

    async def submit(self, task: TaskRequest) -> str:
        """The session id (the caller's, when it chose one: then Submit is idempotent)."""
        request = agent_pb2.SubmitRequest(
            goal=task.goal,
            session_id=task.session_id,
            agent_profile=task.agent_profile,
            tenant=task.tenant,
            max_iterations=task.max_iterations,
            metadata=task.metadata,
        )
        return str((await self._caller.unary(self._stub.Submit, request)).session_id)

    async def get(self, session_id: str) -> SessionView:
        reply = await self._caller.unary(
            self._stub.Get, agent_pb2.GetRequest(session_id=session_id)
        )
        return SessionView(
            session_id=reply.session_id,
            status=STATUSES.get(reply.status, "unknown"),
            answer=reply.answer,
            error=reply.error,
            iterations=reply.iterations,
        )

    async def stream_events(
        self, session_id: str, after_event_id: str = ""
    ) -> AsyncIterator[SessionEvent]:
        """The session's progress so far and as it happens, until it finishes or the caller
        stops; with ``after_event_id`` (a ``SessionEvent.event_id`` seen before) only the events
        after it, so a client that lost its stream resumes where it was."""
        request = agent_pb2.StreamEventsRequest(
            session_id=session_id, after_event_id=after_event_id
        )
        async for event in self._caller.stream(self._stub.StreamEvents, request):
            yield SessionEvent(
                session_id=event.session_id,
                type=event.type,
                iteration=event.iteration,
                detail_json=event.detail_json,
                time=event.time,
                event_id=event.event_id,
            )

    async def cancel(self, session_id: str, reason: str = "") -> bool:
        request = agent_pb2.CancelRequest(session_id=session_id, reason=reason)
        return bool((await self._caller.unary(self._stub.Cancel, request)).accepted)

    async def submit_plan(self, plan_json: str, plan_id: str = "", tenant: str = "") -> str:
        """Submit a ``PlanSpec`` (as JSON) under the caller's tenant; the plan id. A plan that
        cannot run is ``InvalidArgument`` with the reason."""
        request = agent_pb2.SubmitPlanRequest(plan_json=plan_json, plan_id=plan_id, tenant=tenant)
        return str((await self._caller.unary(self._stub.SubmitPlan, request)).plan_id)

    async def get_plan(self, plan_id: str, wait_s: float = 0.0) -> SessionView:
        """The plan as a session: status, answer or error, and the nodes that ran as its
        ``iterations``. ``wait_s``: wait up to that long for it to finish (the call's deadline
        is stretched by as much, so a long poll is not cut short by the default one)."""
        request = agent_pb2.GetPlanRequest(plan_id=plan_id, wait_s=wait_s)
        deadline = self._caller.options.timeout_s + max(wait_s, 0.0)
        reply = await self._caller.unary(self._stub.GetPlan, request, timeout_s=deadline)
        return SessionView(
            session_id=reply.plan_id,
            status=STATUSES.get(reply.status, "unknown"),
            answer=reply.answer,
            error=reply.error,
            iterations=reply.nodes_run,
        )
