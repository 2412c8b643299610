"""The plan scheduler: dispatch order and parallelism, failure propagation, completion."""

from __future__ import annotations

import pytest

from keel_agent_loop.plans import PlanInvalid, debate, pipeline, sub_plan
from keel_agent_loop.plans.scheduler import PlanState
from keel_contracts.events.plans import PlanNode, PlanSpec


def node(node_id: str, *deps: str, goal: str = "") -> PlanNode:
    return PlanNode(id=node_id, goal=goal or f"do {node_id}", depends_on=list(deps))


def started(spec: PlanSpec, plan_id: str = "p") -> PlanState:
    return PlanState.start(spec.model_copy(update={"plan_id": plan_id}))


def test_ready_nodes_are_dispatched_together_up_to_the_limit() -> None:
    spec = PlanSpec(max_parallel=2, nodes=[node("a"), node("b"), node("c"), node("d", "a")])
    state = started(spec)
    first = state.dispatch_ready()
    assert [d.node_id for d in first] == ["a", "b"]
    assert state.dispatch_ready() == []  # the limit holds while both run
    state.node_finished("b", True, "B")
    assert [d.node_id for d in state.dispatch_ready()] == ["c"]
    state.node_finished("a", True, "A")
    assert [d.node_id for d in state.dispatch_ready()] == ["d"]


def test_dispatch_carries_session_id_and_rendered_goal() -> None:
    spec = PlanSpec(
        goal="Sum",
        nodes=[node("a"), node("b", "a", goal="{plan.goal} of {deps.a}")],
    )
    state = started(spec, "plan-7")
    (a,) = state.dispatch_ready()
    assert a.session_id == "plan-7.a"
    state.node_finished("a", True, "5")
    (b,) = state.dispatch_ready()
    assert (b.goal, b.session_id) == ("Sum of 5", "plan-7.b")


def test_failure_cancels_transitive_dependents_while_independent_branches_run() -> None:
    spec = PlanSpec(
        nodes=[
            node("a"),
            node("b", "a"),
            node("c", "b"),
            node("x"),
            node("y", "x"),
            node("join", "c", "y"),
        ]
    )
    state = started(spec)
    assert [d.node_id for d in state.dispatch_ready()] == ["a", "x"]
    assert state.node_finished("a", False, error="boom")
    assert state.statuses() == {
        "a": "failed",
        "b": "cancelled",
        "c": "cancelled",
        "x": "running",
        "y": "pending",
        "join": "cancelled",
    }
    assert not state.finished
    state.node_finished("x", True, "X")
    assert [d.node_id for d in state.dispatch_ready()] == ["y"]
    state.node_finished("y", True, "Y")
    assert state.finished
    assert state.status == "failed"
    assert state.error == "node a failed: boom; cancelled: b, c, join"


def test_all_succeeded_output_joins_sink_outputs() -> None:
    state = started(PlanSpec(nodes=[node("a"), node("b", "a"), node("c", "a")]))
    state.dispatch_ready()
    state.node_finished("a", True, "A")
    state.dispatch_ready()
    state.node_finished("c", True, "C")
    assert not state.finished
    state.node_finished("b", True, "B")
    assert (state.status, state.output) == ("succeeded", "B\n\nC")


def test_repeated_or_unknown_results_change_nothing() -> None:
    state = started(PlanSpec(nodes=[node("a"), node("b", "a")]))
    state.dispatch_ready()
    assert state.node_finished("a", True, "first")
    assert not state.node_finished("a", False, error="late duplicate")
    assert not state.node_finished("b", True, "not dispatched yet")
    assert not state.node_finished("ghost", True)
    assert state.nodes["a"].output == "first"
    assert state.nodes["b"].status == "pending"


def test_cycle_is_rejected_at_start() -> None:
    with pytest.raises(PlanInvalid, match="cycle: a -> b -> a"):
        started(PlanSpec(nodes=[node("a", "b"), node("b", "a")]))


def test_pipeline_output_is_the_last_stage() -> None:
    state = started(pipeline("p", ["one", "two: {input}", "three: {input}"]))
    for expected_goal, output in (("one", "1"), ("two: 1", "2"), ("three: 2", "3")):
        (dispatch,) = state.dispatch_ready()
        assert dispatch.goal == expected_goal
        state.node_finished(dispatch.node_id, True, output)
    assert (state.status, state.output) == ("succeeded", "3")


def test_debate_runs_agents_in_parallel_and_outputs_the_judge() -> None:
    state = started(debate("What is 2 + 3?", 3, judge="Judge: pick one."))
    agents = state.dispatch_ready()
    assert [d.goal for d in agents] == ["What is 2 + 3?"] * 3
    for i, dispatch in enumerate(agents, start=1):
        state.node_finished(dispatch.node_id, True, f"answer {i}")
    (judge,) = state.dispatch_ready()
    assert (
        "[strict] (agent-1): answer 1\n[liberal] (agent-2): answer 2\n"
        "[risk-focused] (agent-3): answer 3"
    ) in judge.goal
    assert [d.stance.name for d in agents if d.stance] == ["strict", "liberal", "risk-focused"]
    state.node_finished("judge", True, "Verdict: 5")
    assert (state.status, state.output) == ("succeeded", "Verdict: 5")


def test_plan_node_dispatches_its_nested_plan() -> None:
    inner = debate("unused", 2)
    state = started(PlanSpec(goal="G", nodes=[sub_plan("team", "Team on {plan.goal}", inner)]))
    (dispatch,) = state.dispatch_ready()
    assert (dispatch.kind, dispatch.goal, dispatch.plan) == ("plan", "Team on G", inner)


def test_state_survives_a_json_round_trip() -> None:
    state = started(PlanSpec(nodes=[node("a"), node("b", "a")]))
    state.dispatch_ready()
    restored = PlanState.model_validate_json(state.model_dump_json())
    restored.node_finished("a", True, "A")
    assert [d.node_id for d in restored.dispatch_ready()] == ["b"]
