"""The Kafka handler of ``keel.tasks``, ``keel.subtasks`` and ``keel.approval.decisions``:
turns each record into a call of the session use case (``usecases.SessionRunner``).

- ``TaskSubmitted``: start the session (or resume it from its checkpoint).
- ``ApprovalDecided``: continue the session parked on that approval. ``ApprovalVoted`` (one
  vote toward a quorum) passes: the session waits for the decision.
- ``TaskCancelRequested``: cancel a session that is parked or only checkpointed.
- ``PlanFinished`` (on ``keel.subtasks``, from the plan orchestrator): continue the session
  parked in plan mode on that plan.

A record without a session id or of another type is poison (dead-lettered with the reason).
The use case returns only when the session finishes or parks, so the record is committed then.
"""

from __future__ import annotations

from keel_agent_loop.usecases import SessionRunner
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalVoted,
    Envelope,
    TaskCancelRequested,
    TaskSubmitted,
)
from keel_contracts.events.plans import PlanFinished
from keel_core.bus import PoisonMessage


class TaskHandler:
    def __init__(self, sessions: SessionRunner) -> None:
        self._sessions = sessions

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.type == ApprovalVoted.event_type:
            return
        session_id = envelope.session_id
        if not session_id:
            raise PoisonMessage(f"{envelope.type} without a session id")
        if envelope.type == TaskSubmitted.event_type:
            await self._sessions.start(session_id, envelope.trace, envelope.parse(TaskSubmitted))
        elif envelope.type == ApprovalDecided.event_type:
            await self._sessions.decide(session_id, envelope.parse(ApprovalDecided))
        elif envelope.type == PlanFinished.event_type:
            await self._sessions.plan_finished(session_id, envelope.parse(PlanFinished))
        elif envelope.type == TaskCancelRequested.event_type:
            request = envelope.parse(TaskCancelRequested)
            await self._sessions.cancel(session_id, request.reason)
        else:
            raise PoisonMessage(f"the agent loop does not handle {envelope.type!r}")
