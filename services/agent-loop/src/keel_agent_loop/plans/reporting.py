"""The worker side of plans: when a subtask's session ends, tell its plan.

Agent-loop workers run ``keel.subtasks`` with their normal task handler; this object is one of
that handler's finish hooks, called after the session's result is published. It publishes a
``NodeFinished`` on ``keel.plans`` keyed by the plan id. At-least-once: a session whose result is
republished reports again, and the plan's scheduler ignores the repeat.
"""

from __future__ import annotations

from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.plans.handler import finished_status
from keel_contracts.events import Envelope, TaskCompleted, TaskFailed
from keel_contracts.events.plans import NodeFinished, split_node_session
from keel_contracts.topics import PLANS
from keel_core.bus.producer import Publisher

SOURCE = "agent-loop.worker"


def plan_node_of(session_id: str, metadata: dict[str, str] | None) -> tuple[str, str] | None:
    """The (plan id, node id) a session works for, or None for an ordinary session.

    The task's metadata says so when the session carries it; otherwise the session id of a
    subtask (``<plan_id>.<node_id>``) does. Ordinary session ids (uuid hex) have no dot.
    """
    if metadata and metadata.get("plan_id") and metadata.get("node_id"):
        return metadata["plan_id"], metadata["node_id"]
    return split_node_session(session_id)


class PlanReporter:
    """``await reporter(state, result)``: a TaskHandler finish hook."""

    def __init__(self, publisher: Publisher, source: str = SOURCE) -> None:
        self._publisher = publisher
        self._source = source

    async def __call__(self, state: AgentState, result: TaskCompleted | TaskFailed) -> None:
        session_id = state.session_id
        found = plan_node_of(session_id, state.metadata)
        if found is None:
            return
        plan_id, node_id = found
        succeeded = isinstance(result, TaskCompleted)
        finished = NodeFinished(
            plan_id=plan_id,
            node_id=node_id,
            session_id=session_id,
            status=finished_status(succeeded),
            output=result.answer if isinstance(result, TaskCompleted) else "",
            error="" if isinstance(result, TaskCompleted) else f"{result.reason}: {result.error}",
        )
        envelope = Envelope.wrap(
            finished, source=self._source, session_id=plan_id, trace=state.trace
        )
        await self._publisher.publish(PLANS, envelope, key=plan_id)
