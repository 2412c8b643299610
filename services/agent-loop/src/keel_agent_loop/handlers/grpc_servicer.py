"""The AgentService front door: Submit and Cancel publish to Kafka; Get and StreamEvents read
the sessions this process runs or accepted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.ports import CheckpointStore, NoCheckpoints
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.mapping import (
    checked_session_id,
    event_to_proto,
    record_to_proto,
    task_from_submit,
)
from keel_contracts.errors import NotFound, Unavailable
from keel_contracts.events import Envelope, TaskCancelRequested
from keel_contracts.topics import CONTROL, TASKS
from keel_core.bus.producer import Publisher
from keel_core.tracing import new_traceparent

SOURCE = "agent-loop"


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        store: SessionStore,
        publisher: Publisher,
        default_max_iterations: int,
        *,
        checkpoints: CheckpointStore | None = None,
        cancels: CancelFlags | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._default_max_iterations = default_max_iterations
        self._checkpoints = checkpoints or NoCheckpoints()
        self._cancels = cancels or CancelFlags()

    async def Submit(
        self, request: agent_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.SubmitResponse:
        task = task_from_submit(request, self._default_max_iterations)
        session_id = checked_session_id(request.session_id or uuid.uuid4().hex)
        # A caller-chosen id seen before: the task is already on its way (idempotent Submit).
        if self._store.get(session_id) is not None:
            return agent_pb2.SubmitResponse(session_id=session_id)
        trace = new_traceparent()
        envelope = Envelope.wrap(task, source=SOURCE, session_id=session_id, trace=trace)
        self._store.submitted(session_id, trace)
        try:
            await self._publisher.publish(TASKS, envelope, key=session_id)
        except Exception as exc:
            self._store.discard(session_id)
            raise Unavailable(f"could not publish the task: {exc}") from exc
        return agent_pb2.SubmitResponse(session_id=session_id)

    async def Get(
        self, request: agent_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetResponse:
        record = self._store.get(request.session_id)
        if record is None:
            raise NotFound(f"unknown session {request.session_id!r}")
        return record_to_proto(record)

    async def StreamEvents(
        self, request: agent_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.TaskEvent]:
        async for event in self._store.watch(request.session_id):
            yield event_to_proto(event)

    async def Cancel(
        self, request: agent_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CancelResponse:
        """Durable on ``keel.tasks`` (reaches a parked or not yet started session) and broadcast
        on ``keel.control`` (reaches the replica running it). A session this process saw
        finish is not cancelled again (accepted=false)."""
        session_id = request.session_id
        record = self._store.get(session_id)
        if record is None and self._checkpoints.get(session_id) is None:
            raise NotFound(f"unknown session {session_id!r}")
        if record is not None and record.finished:
            return agent_pb2.CancelResponse(accepted=False)
        reason = request.reason or "cancelled by request"
        trace = record.trace if record is not None else ""
        cancel = TaskCancelRequested(reason=reason, requested_by="AgentService.Cancel")
        envelope = Envelope.wrap(cancel, source=SOURCE, session_id=session_id, trace=trace)
        self._cancels.request(session_id, reason)
        try:
            await self._publisher.publish(TASKS, envelope, key=session_id)
            await self._publisher.publish(CONTROL, envelope, key=session_id)
        except Exception as exc:
            raise Unavailable(f"could not publish the cancel request: {exc}") from exc
        return agent_pb2.CancelResponse(accepted=True)
