"""Client of ``keel.agent.v1.AgentService``, the front door: submit a task, follow it, read
its result, cancel it."""

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
