"""The AgentService front door: Submit publishes to ``keel.tasks``; Get and StreamEvents read
the sessions this process runs or accepted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.mapping import (
    checked_session_id,
    event_to_proto,
    record_to_proto,
    task_from_submit,
)
from keel_core.bus.producer import Publisher
from keel_core.errors import FailedPrecondition, NotFound, Unavailable
from keel_core.events import Envelope
from keel_core.topics import TASKS
from keel_core.tracing import new_traceparent

SOURCE = "agent-loop"


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, store: SessionStore, publisher: Publisher, default_max_iterations: int):
        self._store = store
        self._publisher = publisher
        self._default_max_iterations = default_max_iterations

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
        raise FailedPrecondition("cancellation arrives with durable sessions")
