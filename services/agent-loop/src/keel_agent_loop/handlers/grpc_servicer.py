"""The AgentService servicer: protobuf in, a call of ``usecases.FrontDoor``, protobuf out.
Errors raised by the use case are mapped to status codes by the gRPC server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.handlers.mapping import (
    checked_session_id,
    event_to_proto,
    record_to_proto,
    task_from_submit,
)
from keel_agent_loop.handlers.plan_mapping import plan_to_proto
from keel_agent_loop.usecases import FrontDoor
from keel_agent_loop.usecases.plan_door import PlanCaller, PlanDoor
from keel_contracts.errors import FailedPrecondition
from keel_core.grpc.auth import ANY_TENANT, current_principal, peer_identity


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        front_door: FrontDoor,
        default_max_iterations: int,
        plans: PlanDoor | None = None,
    ) -> None:
        self._front_door = front_door
        self._default_max_iterations = default_max_iterations
        self._plans = plans

    async def Submit(
        self, request: agent_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.SubmitResponse:
        task = task_from_submit(request, self._default_max_iterations)
        session_id = checked_session_id(request.session_id or uuid.uuid4().hex)
        await self._front_door.submit(session_id, task)
        return agent_pb2.SubmitResponse(session_id=session_id)

    async def Get(
        self, request: agent_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetResponse:
        return record_to_proto(self._front_door.get(request.session_id, caller_tenant()))

    async def StreamEvents(
        self, request: agent_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.TaskEvent]:
        events = self._front_door.watch(
            request.session_id, caller_tenant(), after_event_id=request.after_event_id
        )
        async for event in events:
            yield event_to_proto(event)

    async def Cancel(
        self, request: agent_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CancelResponse:
        accepted = await self._front_door.cancel(
            request.session_id, request.reason, caller_tenant()
        )
        return agent_pb2.CancelResponse(accepted=accepted)

    async def SubmitPlan(
        self, request: agent_pb2.SubmitPlanRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.SubmitPlanResponse:
        # The interceptor has bound request.tenant to a token caller's tenant (an operator's
        # token may name one); the transport identity is recorded beside the caller.
        principal = current_principal()
        caller = PlanCaller(
            tenant=request.tenant or "default",
            who=principal.name if principal is not None else "",
            via=peer_identity(context),
        )
        record = await self._plan_door().submit(request.plan_json, request.plan_id, caller)
        return agent_pb2.SubmitPlanResponse(plan_id=record.plan_id, nodes=record.nodes)

    async def GetPlan(
        self, request: agent_pb2.GetPlanRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetPlanResponse:
        record = await self._plan_door().get(request.plan_id, caller_tenant(), request.wait_s)
        return plan_to_proto(record)

    def _plan_door(self) -> PlanDoor:
        if self._plans is None:
            raise FailedPrecondition("this agent loop takes no plans over gRPC")
        return self._plans


def caller_tenant() -> str | None:
    """The tenant a token caller is confined to; None for a service, an operator token that
    may name any tenant, or an unsecured (dev) server."""
    principal = current_principal()
    if principal is None or principal.kind != "token" or principal.tenant == ANY_TENANT:
        return None
    return principal.tenant
