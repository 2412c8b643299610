"""The keel.plans handler against an in-memory publisher and store: what it publishes for
each event, and that redelivered events change nothing."""

from __future__ import annotations

import pytest

from keel_agent_loop.plans import debate, sub_plan
from keel_agent_loop.plans.handler import PlanHandler
from keel_agent_loop.plans.store import MemoryPlanStore, load_state
from keel_contracts.events import Envelope, EventData, TaskCompleted, TaskFailed, TaskSubmitted
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
    Sampling,
    sampling_of,
    stance_of,
)
from keel_contracts.topics import PLANS, RESULTS, SUBTASKS
from keel_core.bus import PoisonMessage
from keel_core.testing import InMemoryPublisher


def wrap(payload: EventData, key: str) -> Envelope:
    return Envelope.wrap(payload, source="test", session_id=key)


def node(node_id: str, *deps: str) -> PlanNode:
    return PlanNode(id=node_id, goal=f"do {node_id}", depends_on=list(deps))


def finished(plan_id: str, node_id: str, ok: bool = True, output: str = "") -> Envelope:
    payload = NodeFinished(
        plan_id=plan_id,
        node_id=node_id,
        session_id=f"{plan_id}.{node_id}",
        status="succeeded" if ok else "failed",
        output=output or node_id.upper(),
        error="" if ok else "it broke",
    )
    return wrap(payload, plan_id)


@pytest.fixture
def parts() -> tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore]:
    publisher = InMemoryPublisher()
    store = MemoryPlanStore()
    return PlanHandler(store, publisher), publisher, store


def keys(publisher: InMemoryPublisher, topic: str) -> list[str]:
    return [(r.key or b"").decode() for r in publisher.sent if r.topic == topic]


async def test_submission_dispatches_ready_nodes_as_subtasks(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, store = parts
    spec = PlanSpec(plan_id="p1", goal="G", nodes=[node("a"), node("b"), node("c", "a", "b")])
    await handler(wrap(PlanSubmitted(plan=spec), "p1"))
    tasks = [e.parse(TaskSubmitted) for e in publisher.envelopes(SUBTASKS)]
    assert [t.metadata for t in tasks] == [
        {"plan_id": "p1", "node_id": "a"},
        {"plan_id": "p1", "node_id": "b"},
    ]
    assert keys(publisher, SUBTASKS) == ["p1.a", "p1.b"]
    assert [e.session_id for e in publisher.envelopes(SUBTASKS)] == ["p1.a", "p1.b"]
    dispatched = [e.parse(NodeDispatched).node_id for e in publisher.envelopes(PLANS)]
    assert dispatched == ["a", "b"]
    assert set(keys(publisher, PLANS)) == {"p1"}
    state = load_state(store, "p1")
    assert state is not None
    assert state.statuses() == {"a": "running", "b": "running", "c": "pending"}


async def test_a_debaters_stance_and_sampling_reach_its_subtask(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    spec = debate("Ship?", 2, sampling=Sampling(temperature=0.4, seed=7)).model_copy(
        update={"plan_id": "d1"}
    )
    await handler(wrap(PlanSubmitted(plan=spec), "d1"))
    tasks = [e.parse(TaskSubmitted) for e in publisher.envelopes(SUBTASKS)]
    assert [(stance_of(t.metadata), sampling_of(t.metadata)) for t in tasks] == [
        (spec.node("agent-1").stance, Sampling(temperature=0.4, seed=7)),
        (spec.node("agent-2").stance, Sampling(temperature=0.4, seed=8)),
    ]


async def test_plan_finishes_with_result_and_ignores_duplicates(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    spec = PlanSpec(plan_id="p2", nodes=[node("a"), node("b", "a")])
    submitted = wrap(PlanSubmitted(plan=spec), "p2")
    await handler(submitted)
    await handler(submitted)  # redelivered: nothing new
    await handler(finished("p2", "a", output="five"))
    await handler(finished("p2", "a", output="again"))
    assert keys(publisher, SUBTASKS) == ["p2.a", "p2.b"]
    await handler(finished("p2", "b", output="done"))
    await handler(finished("p2", "b", output="done"))
    (result,) = publisher.envelopes(RESULTS)
    assert result.session_id == "p2"
    assert result.parse(TaskCompleted).answer == "done"
    (plan_done,) = [e for e in publisher.envelopes(PLANS) if e.type == PlanFinished.event_type]
    assert plan_done.parse(PlanFinished).nodes == {"a": "succeeded", "b": "succeeded"}


async def test_failure_cancels_dependents_and_fails_the_plan(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    spec = PlanSpec(plan_id="p3", nodes=[node("a"), node("b", "a"), node("x")])
    await handler(wrap(PlanSubmitted(plan=spec), "p3"))
    await handler(finished("p3", "a", ok=False))
    await handler(finished("p3", "x"))
    assert keys(publisher, SUBTASKS) == ["p3.a", "p3.x"]
    failure = publisher.envelopes(RESULTS)[0].parse(TaskFailed)
    assert failure.error == "node a failed: it broke; cancelled: b"


async def test_cyclic_plan_is_answered_with_a_failure(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, store = parts
    spec = PlanSpec(plan_id="bad", nodes=[node("a", "b"), node("b", "a")])
    await handler(wrap(PlanSubmitted(plan=spec), "bad"))
    assert publisher.envelopes(SUBTASKS) == []
    done = publisher.envelopes(PLANS)[0].parse(PlanFinished)
    assert (done.status, done.error) == ("failed", "invalid plan: cycle: a -> b -> a")
    assert "cycle: a -> b -> a" in publisher.envelopes(RESULTS)[0].parse(TaskFailed).error
    assert load_state(store, "bad") is None


async def test_plan_id_defaults_to_the_envelope_session(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    await handler(wrap(PlanSubmitted(plan=PlanSpec(nodes=[node("a")])), "from-envelope"))
    assert keys(publisher, SUBTASKS) == ["from-envelope.a"]


async def test_hierarchy_runs_a_child_plan_and_reports_back(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    spec = PlanSpec(
        plan_id="top",
        goal="G",
        nodes=[sub_plan("team", "{plan.goal}", debate("ignored", 2)), node("after", "team")],
    )
    await handler(wrap(PlanSubmitted(plan=spec), "top"))
    child = [e for e in publisher.envelopes(PLANS) if e.type == PlanSubmitted.event_type]
    assert len(child) == 1
    submitted = child[0].parse(PlanSubmitted)
    assert (submitted.plan.plan_id, submitted.plan.goal) == ("top.team", "G")
    assert (submitted.parent_plan_id, submitted.parent_node_id) == ("top", "team")
    await handler(child[0])  # the orchestrator consumes its own child plan
    assert keys(publisher, SUBTASKS) == ["top.team.agent-1", "top.team.agent-2"]
    await handler(finished("top.team", "agent-1"))
    await handler(finished("top.team", "agent-2"))
    await handler(finished("top.team", "judge", output="verdict"))
    back = [
        e.parse(NodeFinished)
        for e in publisher.envelopes(PLANS)
        if e.type == NodeFinished.event_type and e.session_id == "top"
    ]
    assert [(b.node_id, b.output) for b in back] == [("team", "verdict")]
    await handler(publisher.envelopes(PLANS)[-1])
    assert keys(publisher, SUBTASKS)[-1] == "top.after"
    assert publisher.envelopes(SUBTASKS)[-1].parse(TaskSubmitted).metadata == {
        "plan_id": "top",
        "node_id": "after",
    }


async def test_unknown_event_types_are_poison(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, _publisher, _store = parts
    with pytest.raises(PoisonMessage):
        await handler(wrap(TaskCompleted(answer="x", iterations=1), "p"))


async def test_finished_node_of_unknown_plan_is_ignored(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    handler, publisher, _store = parts
    await handler(finished("nobody", "a"))
    assert publisher.sent == []


async def test_a_plans_sessions_and_nested_plans_are_its_tenants(
    parts: tuple[PlanHandler, InMemoryPublisher, MemoryPlanStore],
) -> None:
    """Budgets, memory, policy and audit of a plan's sessions follow the tenant on their
    task: every one, nested plans' included, is the plan's, whatever a nested spec says."""
    handler, publisher, _store = parts
    nested = PlanSpec(tenant="elsewhere", nodes=[node("inner")])
    spec = PlanSpec(
        plan_id="top",
        tenant="acme",
        nodes=[node("first"), sub_plan("team", "{plan.goal}", nested)],
    )
    await handler(wrap(PlanSubmitted(plan=spec), "top"))
    (child,) = [e for e in publisher.envelopes(PLANS) if e.type == PlanSubmitted.event_type]
    assert child.parse(PlanSubmitted).plan.tenant == "acme"
    await handler(child)
    tasks = {(e.session_id, e.parse(TaskSubmitted).tenant) for e in publisher.envelopes(SUBTASKS)}
    assert tasks == {("top.first", "acme"), ("top.team.inner", "acme")}
