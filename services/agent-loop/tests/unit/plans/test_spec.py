"""The plan spec and its validation (keel_agent_loop.plans.validation): what gets rejected, and the
shapes the builders produce."""

from __future__ import annotations

import pytest

from keel_agent_loop.plans import PlanInvalid, check_plan, debate, pipeline, sub_plan
from keel_agent_loop.plans.validation import find_cycle, render_goal
from keel_contracts.events.plans import (
    PlanNode,
    PlanSpec,
    Sampling,
    Stance,
    persona_metadata,
    sampling_of,
    split_node_session,
    stance_of,
)


def node(node_id: str, *deps: str, goal: str = "do it") -> PlanNode:
    return PlanNode(id=node_id, goal=goal, depends_on=list(deps))


def test_cycle_is_rejected_and_named() -> None:
    spec = PlanSpec(nodes=[node("a"), node("b", "a", "d"), node("c", "b"), node("d", "c")])
    with pytest.raises(PlanInvalid, match=r"cycle: b -> d -> c -> b"):
        check_plan(spec)


def test_self_dependency_is_a_cycle() -> None:
    assert find_cycle(PlanSpec(nodes=[node("a", "a")])) == ["a", "a"]


def test_empty_plan_is_rejected() -> None:
    with pytest.raises(PlanInvalid, match="no nodes"):
        check_plan(PlanSpec(goal="nothing"))


def test_duplicate_ids_and_unknown_dependencies_are_reported_together() -> None:
    spec = PlanSpec(nodes=[node("a"), node("a"), node("b", "ghost")])
    with pytest.raises(PlanInvalid) as caught:
        check_plan(spec)
    assert "duplicate node ids: a" in str(caught.value)
    assert "node b depends on unknown ghost" in str(caught.value)


def test_output_reference_without_dependency_is_rejected() -> None:
    spec = PlanSpec(nodes=[node("a"), node("b", goal="use {deps.a}")])
    with pytest.raises(PlanInvalid, match="node b uses the output of a without depending on it"):
        check_plan(spec)


def test_nested_plan_is_checked_with_its_path() -> None:
    inner = PlanSpec(nodes=[node("x", "y"), node("y", "x")])
    spec = PlanSpec(nodes=[sub_plan("team", "research", inner)])
    with pytest.raises(PlanInvalid, match=r"team: cycle: x -> y -> x"):
        check_plan(spec)


def test_plan_node_without_nested_plan_is_rejected() -> None:
    with pytest.raises(PlanInvalid, match="is a plan but has no nested plan"):
        check_plan(PlanSpec(nodes=[PlanNode(id="a", goal="g", kind="plan")]))


def test_node_ids_cannot_contain_dots() -> None:
    with pytest.raises(ValueError, match="pattern"):
        PlanNode(id="a.b", goal="g")


def test_render_fills_dependencies_and_plan_goal_and_keeps_other_braces() -> None:
    text = render_goal("{plan.goal}: {deps.a} + {deps.b} {json}", "Sum", {"a": "1", "b": "2"})
    assert text == "Sum: 1 + 2 {json}"


def test_pipeline_chains_stages_through_their_outputs() -> None:
    spec = pipeline("report", ["What is 2 + 3?", "Summarise: {input}", "Shout"])
    assert [(n.id, n.depends_on) for n in spec.nodes] == [
        ("stage-1", []),
        ("stage-2", ["stage-1"]),
        ("stage-3", ["stage-2"]),
    ]
    assert spec.nodes[1].goal == "Summarise: {deps.stage-1}"
    assert spec.nodes[2].goal == "Shout\n\n{deps.stage-2}"


def test_debate_judge_depends_on_every_agent_and_reads_their_answers() -> None:
    spec = debate("What is 2 + 3?", 3, judge="Judge: pick one.")
    judge = spec.node("judge")
    assert judge.depends_on == ["agent-1", "agent-2", "agent-3"]
    assert "[liberal] (agent-2): {deps.agent-2}" in judge.goal
    assert all(spec.node(f"agent-{i}").goal == "{plan.goal}" for i in (1, 2, 3))


def test_debaters_get_different_default_stances_not_copies() -> None:
    spec = debate("Ship on Friday?", 3)
    stances = [spec.node(f"agent-{i}").stance for i in (1, 2, 3)]
    assert [s.name for s in stances if s] == ["strict", "liberal", "risk-focused"]
    assert len({s.prompt for s in stances if s}) == 3
    assert spec.node("judge").stance is None


def test_more_debaters_than_default_stances_still_differ() -> None:
    spec = debate("q", 7)
    names = [n.stance.name for n in spec.nodes if n.stance]
    assert len(set(names)) == 7
    assert names[5:] == ["strict-2", "liberal-2"]


def test_given_stances_and_sampling_name_the_debaters() -> None:
    stances = [Stance(name="optimist", prompt="Be hopeful."), Stance(name="pessimist")]
    spec = debate("q", 5, stances=stances, sampling=Sampling(temperature=0.7, seed=10))
    debaters = [n for n in spec.nodes if n.id != "judge"]
    assert [n.stance for n in debaters] == stances
    assert [n.sampling for n in debaters] == [
        Sampling(temperature=0.7, seed=10),
        Sampling(temperature=0.7, seed=11),
    ]
    assert "[pessimist] (agent-2): {deps.agent-2}" in spec.node("judge").goal


def test_a_debate_rejects_two_debaters_with_one_stance() -> None:
    with pytest.raises(PlanInvalid, match="stances must differ: same"):
        debate("q", stances=[Stance(name="same"), Stance(name="same")])


def test_stance_and_sampling_round_trip_through_task_metadata() -> None:
    stance, sampling = Stance(name="strict", prompt="Be strict."), Sampling(temperature=0.5, seed=3)
    metadata = persona_metadata(stance, sampling)
    assert (stance_of(metadata), sampling_of(metadata)) == (stance, sampling)
    assert persona_metadata(None, None) == {}
    assert (stance_of({}), sampling_of({"temperature": "hot"})) == (None, None)


def test_debate_needs_an_agent() -> None:
    with pytest.raises(PlanInvalid):
        debate("q", 0)


def test_plan_round_trips_through_json() -> None:
    spec = PlanSpec(plan_id="p", nodes=[node("a"), sub_plan("b", "more", debate("q", 2), ["a"])])
    assert PlanSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("session_id", "expected"),
    [
        ("p1.a", ("p1", "a")),
        ("p1.team.worker-2", ("p1.team", "worker-2")),
        ("0f3a9c", None),
        (".a", None),
    ],
)
def test_node_session_ids_split_back(session_id: str, expected: tuple[str, str] | None) -> None:
    assert split_node_session(session_id) == expected
