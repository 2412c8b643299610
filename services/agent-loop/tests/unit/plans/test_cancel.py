"""Cancelling a plan: the orchestrator stops its running sessions and nested plans, starts no
pending node, audits the cancel and ends the plan failed; late results change nothing."""

from __future__ import annotations

from keel_agent_loop.plans import debate, sub_plan
from keel_agent_loop.plans.handler import PlanHandler
from keel_agent_loop.plans.scheduler import PlanState
from keel_agent_loop.plans.store import MemoryPlanStore, load_state
from keel_contracts.events import Envelope, EventData, TaskCancelRequested, TaskFailed
from keel_contracts.events.plans import (
    NodeFinished,
    PlanCancelRequested,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
)
from keel_contracts.topics import CONTROL, PLANS, RESULTS, SUBTASKS, TASKS
from keel_core.testing import InMemoryPublisher, in_memory_audit


def wrap(payload: EventData, key: str) -> Envelope:
    return Envelope.wrap(payload, source="test", session_id=key)


def node(node_id: str, *deps: str) -> PlanNode:
    return PlanNode(id=node_id, goal=f"do {node_id}", depends_on=list(deps))


def cancel(plan_id: str, reason: str = "user asked") -> Envelope:
    request = PlanCancelRequested(plan_id=plan_id, reason=reason, requested_by="session:s1")
    return wrap(request, plan_id)


def test_cancel_ends_every_unfinished_node_and_returns_the_running_ones() -> None:
    spec = PlanSpec(plan_id="p", max_parallel=1, nodes=[node("a"), node("b"), node("c", "a")])
    state = PlanState.start(spec)
    state.dispatch_ready()
    stops = state.cancel("stop")
    assert [(s.node_id, s.session_id, s.kind) for s in stops] == [("a", "p.a", "agent")]
    assert state.statuses() == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    assert (state.status, state.error) == ("failed", "cancelled: stop")
    assert state.dispatch_ready() == []
    assert not state.node_finished("a", True, "late")
    assert state.cancel("again") == []


async def test_a_cancelled_plan_stops_its_sessions_starts_nothing_and_is_audited() -> None:
    publisher = InMemoryPublisher()
    store = MemoryPlanStore()
    audit, audited = in_memory_audit("agent-loop")
    audit.start()
    handler = PlanHandler(store, publisher, audit=audit)
    spec = PlanSpec(plan_id="p1", max_parallel=2, nodes=[node("a"), node("b"), node("c")])
    await handler(wrap(PlanSubmitted(plan=spec, parent_session_id="s1"), "p1"))
    await handler(cancel("p1"))
    await handler(cancel("p1"))  # redelivered: the plan has finished, nothing new
    late = NodeFinished(plan_id="p1", node_id="a", session_id="p1.a", status="succeeded")
    await handler(wrap(late, "p1"))
    await audit.close()

    assert [(r.key or b"").decode() for r in publisher.sent if r.topic == SUBTASKS] == [
        "p1.a",
        "p1.b",
        "s1",  # the plan's end, told to the waiting session's lane
    ]
    for topic in (TASKS, CONTROL):
        stops = publisher.envelopes(topic)
        assert [e.session_id for e in stops] == ["p1.a", "p1.b"]
        assert {e.parse(TaskCancelRequested).requested_by for e in stops} == {"plan:p1"}
        assert {e.parse(TaskCancelRequested).reason for e in stops} == {"user asked"}
    (done,) = [
        e.parse(PlanFinished)
        for e in publisher.envelopes(PLANS)
        if e.type == PlanFinished.event_type
    ]
    assert (done.status, done.error) == ("failed", "cancelled: user asked")
    assert done.nodes == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    (result,) = publisher.envelopes(RESULTS)
    assert result.parse(TaskFailed).reason == "cancelled"
    records = [r for r in audited.audit_records() if r.action == "plan.cancelled"]
    assert [(r.actor, r.subject, r.details["stopped"]) for r in records] == [
        ("session:s1", "p1", ["p1.a", "p1.b"])
    ]
    state = load_state(store, "p1")
    assert state is not None
    assert state.status == "failed"


async def test_a_running_nested_plan_is_cancelled_in_turn_and_the_parent_is_told() -> None:
    publisher = InMemoryPublisher()
    handler = PlanHandler(MemoryPlanStore(), publisher)
    spec = PlanSpec(
        plan_id="top", goal="G", nodes=[sub_plan("team", "{plan.goal}", debate("x", 2))]
    )
    await handler(wrap(PlanSubmitted(plan=spec), "top"))
    (child,) = [e for e in publisher.envelopes(PLANS) if e.type == PlanSubmitted.event_type]
    await handler(child)
    await handler(cancel("top"))
    (child_cancel,) = [
        e.parse(PlanCancelRequested)
        for e in publisher.envelopes(PLANS)
        if e.type == PlanCancelRequested.event_type
    ]
    assert (child_cancel.plan_id, child_cancel.requested_by) == ("top.team", "plan:top")
    await handler(wrap(child_cancel, "top.team"))  # the orchestrator consumes its own cancel
    assert [e.session_id for e in publisher.envelopes(TASKS)] == [
        "top.team.agent-1",
        "top.team.agent-2",
    ]
    ended = {
        e.parse(PlanFinished).plan_id: e.parse(PlanFinished).status
        for e in publisher.envelopes(PLANS)
        if e.type == PlanFinished.event_type
    }
    assert ended == {"top": "failed", "top.team": "failed"}


async def test_a_cancel_of_an_unknown_plan_publishes_nothing() -> None:
    publisher = InMemoryPublisher()
    await PlanHandler(MemoryPlanStore(), publisher)(cancel("nobody"))
    assert publisher.sent == []
