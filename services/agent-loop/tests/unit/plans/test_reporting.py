"""The worker-side finish hook that tells a plan its node ended."""

from __future__ import annotations

from keel_agent_loop.domain.models import AgentState
from keel_agent_loop.plans.reporting import PlanReporter, plan_node_of
from keel_contracts.events import TaskCompleted, TaskFailed
from keel_contracts.events.plans import NodeFinished
from keel_contracts.topics import PLANS
from keel_core.testing import InMemoryPublisher


async def test_completed_subtask_reports_success_keyed_by_plan() -> None:
    publisher = InMemoryPublisher()
    state = AgentState(session_id="p1.a", goal="g", trace="00-abc-def-01")
    await PlanReporter(publisher)(state, TaskCompleted(answer="5", iterations=2))
    (record,) = publisher.sent
    assert (record.topic, record.key) == (PLANS, b"p1")
    (envelope,) = publisher.envelopes(PLANS)
    assert envelope.parse(NodeFinished) == NodeFinished(
        plan_id="p1", node_id="a", session_id="p1.a", status="succeeded", output="5"
    )
    assert envelope.trace == "00-abc-def-01"


async def test_failed_subtask_reports_the_reason() -> None:
    publisher = InMemoryPublisher()
    state = AgentState(session_id="p1.team.b", goal="g")
    await PlanReporter(publisher)(
        state, TaskFailed(reason="iteration_limit", error="gave up", iterations=8)
    )
    done = publisher.envelopes(PLANS)[0].parse(NodeFinished)
    assert (done.plan_id, done.node_id, done.status) == ("p1.team", "b", "failed")
    assert done.error == "iteration_limit: gave up"


async def test_ordinary_sessions_report_nothing() -> None:
    publisher = InMemoryPublisher()
    state = AgentState(session_id="0f3a9c1d", goal="g")
    await PlanReporter(publisher)(state, TaskCompleted(answer="x", iterations=1))
    assert publisher.sent == []


def test_metadata_wins_over_the_session_id() -> None:
    assert plan_node_of("s.x", {"plan_id": "p", "node_id": "n"}) == ("p", "n")
    assert plan_node_of("s.x", {}) == ("s", "x")
