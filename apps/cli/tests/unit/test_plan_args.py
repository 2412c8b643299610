"""``keel plan debate`` flags: stances and sampling become the debaters' plan nodes."""

from __future__ import annotations

import argparse

import pytest

from keel_agent_loop import PlanInvalid
from keel_cli.plans import _spec_of, add_plan_parser, parse_stance
from keel_contracts.events.plans import PlanSpec, Sampling, Stance


def spec_of(*argv: str) -> PlanSpec:
    parser = argparse.ArgumentParser()
    add_plan_parser(parser.add_subparsers(dest="command"))
    return _spec_of(parser.parse_args(["plan", "debate", "Ship on Friday?", *argv]))


def debaters(spec: PlanSpec) -> list[tuple[str, Sampling | None]]:
    return [(n.stance.name, n.sampling) for n in spec.nodes if n.stance]


def test_by_default_the_debaters_have_different_stances() -> None:
    assert debaters(spec_of()) == [("strict", None), ("liberal", None), ("risk-focused", None)]


def test_stance_flags_name_the_debaters_and_sampling_applies_to_each() -> None:
    spec = spec_of(
        "--stance", "cautious=Think of the weekend.", "--stance", "bold", "--temperature",
        "0.8", "--seed", "4",
    )  # fmt: skip
    assert debaters(spec) == [
        ("cautious", Sampling(temperature=0.8, seed=4)),
        ("bold", Sampling(temperature=0.8, seed=5)),
    ]
    assert spec.node("agent-1").stance == Stance(name="cautious", prompt="Think of the weekend.")
    judge = spec.node("judge").goal
    assert "citing the stances by name" in judge
    assert "[cautious] (agent-1)" in judge
    assert "[bold] (agent-2)" in judge


def test_a_custom_judge_instruction_is_used() -> None:
    assert spec_of("--judge", "Judge: be brief.").node("judge").goal.startswith("Judge: be brief.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--stance", "two words=x"), "letters, digits"),
        (("--temperature", "3"), "between 0 and 2"),
        (("--stance", "a", "--stance", "a"), "stances must differ"),
    ],
)
def test_bad_flags_are_plan_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(PlanInvalid, match=message):
        spec_of(*argv)


def test_parse_stance_takes_everything_after_the_first_equals_as_the_prompt() -> None:
    assert parse_stance("strict=a=b") == Stance(name="strict", prompt="a=b")
