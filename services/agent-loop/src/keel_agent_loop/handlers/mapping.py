"""Protobuf <-> domain conversions for the AgentService."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from keel.agent.v1 import agent_pb2
from keel_agent_loop.domain.sessions import RecordedEvent, SessionRecord
from keel_contracts.errors import InvalidArgument
from keel_contracts.events import TaskSubmitted

# No ":" so the idempotency key ``session:iteration:index`` stays unambiguous.
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# The proto's coarse statuses: every working state (parked included) is RUNNING.
STATUS: dict[str, agent_pb2.SessionStatus.ValueType] = {
    "idle": agent_pb2.SESSION_STATUS_PENDING,
    "planning": agent_pb2.SESSION_STATUS_RUNNING,
    "executing_tool": agent_pb2.SESSION_STATUS_RUNNING,
    "processing_result": agent_pb2.SESSION_STATUS_RUNNING,
    "waiting_for_approval": agent_pb2.SESSION_STATUS_RUNNING,
    "waiting_for_plan": agent_pb2.SESSION_STATUS_RUNNING,
    "completed": agent_pb2.SESSION_STATUS_COMPLETED,
    "failed": agent_pb2.SESSION_STATUS_FAILED,
    "cancelled": agent_pb2.SESSION_STATUS_CANCELLED,
}


def task_from_submit(
    request: agent_pb2.SubmitRequest, default_max_iterations: int
) -> TaskSubmitted:
    if not request.goal.strip():
        raise InvalidArgument("goal must not be empty")
    if request.max_iterations < 0:
        raise InvalidArgument("max_iterations must not be negative")
    try:
        return TaskSubmitted(
            goal=request.goal,
            agent_profile=request.agent_profile or "default",
            tenant=request.tenant or "default",
            max_iterations=request.max_iterations or default_max_iterations,
            metadata=dict(request.metadata),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidArgument(problems) from exc


def checked_session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id):
        raise InvalidArgument(
            "session_id must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return session_id


def record_to_proto(record: SessionRecord) -> agent_pb2.GetResponse:
    return agent_pb2.GetResponse(
        session_id=record.session_id,
        status=STATUS[record.status],
        answer=record.answer,
        error=record.error,
        iterations=record.iteration,
    )


def event_to_proto(event: RecordedEvent) -> agent_pb2.TaskEvent:
    return agent_pb2.TaskEvent(
        session_id=event.session_id,
        type=event.kind,
        iteration=event.iteration,
        detail_json=json.dumps(event.detail, sort_keys=True, ensure_ascii=False, default=str),
        time=event.time.isoformat(),
        event_id=event.event_id,
    )
