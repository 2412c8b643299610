"""Plans written by a model: fenced or bare JSON, and clear errors when they are wrong."""

from __future__ import annotations

import pytest

from keel_agent_loop.plans.from_model import PlanParseError, parse_plan_answer

PLAN = (
    '{"goal": "sums", "nodes": [{"id": "a", "goal": "What is 2 + 3?"}, '
    '{"id": "b", "goal": "Summarise: {deps.a}", "depends_on": ["a"]}]}'
)


def test_fenced_plan_with_prose_around_it() -> None:
    spec = parse_plan_answer(f"Here is my plan:\n```json\n{PLAN}\n```\nGood luck.")
    assert [n.id for n in spec.nodes] == ["a", "b"]
    assert spec.goal == "sums"


def test_bare_plan_and_wrapped_plan() -> None:
    assert parse_plan_answer(f"Plan: {PLAN}").nodes[1].depends_on == ["a"]
    assert parse_plan_answer(f'{{"plan": {PLAN}}}').goal == "sums"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("I would rather not.", "no JSON object found"),
        ('```json\n{"nodes": [\n```', "invalid JSON"),
        ('{"nodes": [{"id": "a b", "goal": "x"}]}', r"nodes\.0\.id: String should match"),
        ('{"nodes": [{"id": "a", "goal": "x"}], "extra": 1}', "extra: Extra inputs"),
        (
            '{"nodes": [{"id": "a", "goal": "x", "depends_on": ["a"]}]}',
            "the plan cannot run: cycle: a -> a",
        ),
        ('{"goal": "empty", "nodes": []}', "plan has no nodes"),
    ],
)
def test_errors_say_what_is_wrong(answer: str, message: str) -> None:
    with pytest.raises(PlanParseError, match=message):
        parse_plan_answer(answer)
