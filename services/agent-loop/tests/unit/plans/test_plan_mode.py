"""Plan mode's checks and messages (plans.plan_mode), the size limits of a model's plan
(validation.PlanLimits), and the orchestrator telling the waiting session how its plan ended."""

from __future__ import annotations

import json

import pytest

from keel_agent_loop.plans import (
    MODEL_PLAN_LIMITS,
    PlanHandler,
    PlanInvalid,
    PlanLimits,
    PlanParseError,
    check_plan,
    debate,
    plan_from_call,
    plan_observation,
    plan_submission,
    plan_tool,
    sub_plan,
)
from keel_agent_loop.plans.store import MemoryPlanStore
from keel_contracts.events import Envelope, EventData
from keel_contracts.events.plans import NodeFinished, PlanFinished, PlanNode, PlanSpec
from keel_contracts.topics import PLANS, SUBTASKS
from keel_core.testing import InMemoryPublisher


def node(node_id: str, *deps: str, profile: str = "default") -> PlanNode:
    return PlanNode(id=node_id, goal=f"do {node_id}", depends_on=list(deps), agent_profile=profile)


def wide(n: int) -> PlanSpec:
    return PlanSpec(nodes=[node(f"n{i}") for i in range(n)])


def nested(depth: int) -> PlanSpec:
    spec = PlanSpec(nodes=[node("leaf")])
    for level in range(depth - 1):
        spec = PlanSpec(nodes=[sub_plan(f"level-{level}", "go", spec)])
    return spec


def test_limits_are_only_applied_when_asked() -> None:
    assert check_plan(wide(40)) == wide(40)


@pytest.mark.parametrize(
    ("spec", "limits", "message"),
    [
        (wide(9), PlanLimits(), "9 nodes start from the start (fan-out at most 8)"),
        (
            PlanSpec(nodes=[node("root"), *(node(f"c{i}", "root") for i in range(3))]),
            PlanLimits(max_fan_out=2),
            "3 nodes start from node root",
        ),
        (wide(5), PlanLimits(max_nodes=4, max_fan_out=10), "too many nodes: 5 (at most 4)"),
        (nested(4), PlanLimits(), "nested too deep: 4 levels (at most 3)"),
        (
            PlanSpec(nodes=[sub_plan("team", "go", PlanSpec(nodes=[node("x", profile="root")]))]),
            PlanLimits(profiles=frozenset({"default", "analyst"})),
            "team: node x names unknown agent profile 'root' (known: analyst, default)",
        ),
    ],
)
def test_a_plan_past_a_limit_is_rejected_with_the_reason(
    spec: PlanSpec, limits: PlanLimits, message: str
) -> None:
    with pytest.raises(PlanInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_plan(spec, limits)


def test_a_nested_plan_within_the_limits_passes() -> None:
    spec = nested(3)
    assert check_plan(spec, MODEL_PLAN_LIMITS) == spec


def test_the_plan_tool_offers_the_spec_schema_and_says_the_limits() -> None:
    tool = plan_tool(PlanLimits(max_nodes=5))
    assert tool.name == "plan"
    assert "at most 5 nodes" in tool.description
    schema = json.loads(tool.parameters_json_schema)
    assert schema["type"] == "object"
    assert {"nodes", "goal"} <= set(schema["properties"])
    assert schema["$defs"]["PlanSpec"]["properties"] == schema["properties"]


def test_a_plan_call_is_checked_and_its_problems_are_words_for_the_model() -> None:
    good = {"plan": {"nodes": [{"id": "a", "goal": "x"}, {"id": "b", "goal": "y"}]}}
    assert [n.id for n in plan_from_call(json.dumps(good)).nodes] == ["a", "b"]
    looping = {"nodes": [{"id": "a", "goal": "x", "depends_on": ["a"]}]}
    with pytest.raises(PlanParseError, match="cycle: a -> a"):
        plan_from_call(json.dumps(looping))
    with pytest.raises(PlanParseError, match="fan-out"):
        plan_from_call(wide(9).model_dump_json())


def test_a_submission_is_keyed_by_the_call_and_names_the_waiting_session() -> None:
    spec = PlanSpec(nodes=[node("a")])
    first = plan_submission("s1", 2, 0, spec, "the session's goal")
    again = plan_submission("s1", 2, 0, spec, "the session's goal")
    assert first == again
    assert first.plan.plan_id == "s1.plan-2-0"
    assert (first.plan.goal, first.parent_session_id) == ("the session's goal", "s1")


def test_the_plans_end_is_marked_data_for_the_model() -> None:
    ok = plan_observation(PlanFinished(plan_id="p", status="succeeded", output="Verdict: go"))
    assert 'trust="untrusted"' in ok
    assert "Verdict: go" in ok
    failed = plan_observation(PlanFinished(plan_id="p", status="failed", error="node a failed"))
    assert failed.startswith("ERROR")
    assert "node a failed" in failed


def wrap(payload: EventData, key: str) -> Envelope:
    return Envelope.wrap(payload, source="test", session_id=key)


async def test_the_orchestrator_tells_the_waiting_session_how_a_nested_plan_ended() -> None:
    publisher = InMemoryPublisher()
    handler = PlanHandler(MemoryPlanStore(), publisher)
    spec = PlanSpec(
        nodes=[sub_plan("panel", "{plan.goal}", debate("q", 2)), node("after", "panel")]
    )
    submitted = plan_submission("s1", 1, 0, spec, "Ship on Friday?")
    plan_id = submitted.plan.plan_id
    await handler(wrap(submitted, plan_id))
    # The nested debate runs as its own plan, then reports to its parent plan's node.
    child = next(e for e in publisher.envelopes(PLANS) if e.session_id == f"{plan_id}.panel")
    await handler(child)
    for debater in ("agent-1", "agent-2", "judge"):
        await handler(
            wrap(
                NodeFinished(
                    plan_id=f"{plan_id}.panel",
                    node_id=debater,
                    session_id=f"{plan_id}.panel.{debater}",
                    status="succeeded",
                    output=f"{debater} says go",
                ),
                f"{plan_id}.panel",
            )
        )
    back = [e for e in publisher.envelopes(PLANS) if e.type == NodeFinished.event_type]
    await handler(back[-1])
    assert publisher.envelopes(SUBTASKS)[-1].session_id == f"{plan_id}.after"
    await handler(
        wrap(
            NodeFinished(
                plan_id=plan_id,
                node_id="after",
                session_id=f"{plan_id}.after",
                status="succeeded",
                output="ship it",
            ),
            plan_id,
        )
    )
    told = [e for e in publisher.envelopes(SUBTASKS) if e.type == PlanFinished.event_type]
    assert [(e.session_id, e.parse(PlanFinished).output) for e in told] == [("s1", "ship it")]
    # Only the top plan was submitted by a session: the nested one tells its parent plan.
    assert [e.parse(PlanFinished).plan_id for e in told] == [plan_id]


async def test_a_rejected_plan_is_reported_to_its_session_too() -> None:
    publisher = InMemoryPublisher()
    handler = PlanHandler(MemoryPlanStore(), publisher)
    spec = PlanSpec(nodes=[node("a", "a")])
    submitted = plan_submission("s2", 1, 0, spec, "goal")
    await handler(wrap(submitted, submitted.plan.plan_id))
    (told,) = publisher.envelopes(SUBTASKS)
    assert told.session_id == "s2"
    assert "cycle" in told.parse(PlanFinished).error
