"""Plans between protobuf and the plan door's records."""

from __future__ import annotations

from keel.agent.v1 import agent_pb2
from keel_agent_loop.usecases.plan_door import PlanRecord, PlanStatus

STATUS: dict[PlanStatus, agent_pb2.SessionStatus.ValueType] = {
    "running": agent_pb2.SESSION_STATUS_RUNNING,
    "completed": agent_pb2.SESSION_STATUS_COMPLETED,
    "failed": agent_pb2.SESSION_STATUS_FAILED,
}


def plan_to_proto(record: PlanRecord) -> agent_pb2.GetPlanResponse:
    return agent_pb2.GetPlanResponse(
        plan_id=record.plan_id,
        status=STATUS[record.status],
        answer=record.answer,
        error=record.error,
        nodes_run=record.nodes_run,
    )
