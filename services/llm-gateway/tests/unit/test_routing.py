"""Complexity estimation and tier chains."""

from __future__ import annotations

import pytest

from keel_contracts.errors import InvalidArgument
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolSpec
from keel_llm_gateway.domain.routing import (
    Complexity,
    Router,
    Target,
    Thresholds,
    estimate_complexity,
)

THRESHOLDS = Thresholds(medium_tokens=100, high_tokens=1000, medium_tools=3, high_tools=10)
SMALL = Target(provider="local", model="qwen-0.5b")
MID = Target(provider="openai", model="gpt-4o-mini")
BIG = Target(provider="openai", model="gpt-4o")
TIERS = {Complexity.LOW: [SMALL, MID], Complexity.MEDIUM: [MID, SMALL], Complexity.HIGH: [BIG, MID]}


def request(chars: int = 10, tools: int = 0, **fields: object) -> CompletionRequest:
    return CompletionRequest(
        messages=(ChatMessage(role="user", content="x" * chars),),
        tools=tuple(ToolSpec(name=f"t{i}", parameters={}) for i in range(tools)),
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("chars", "tools", "expected"),
    [
        (10, 0, Complexity.LOW),
        (396, 0, Complexity.LOW),  # 99 tokens
        (400, 0, Complexity.MEDIUM),  # 100 tokens
        (10, 3, Complexity.MEDIUM),
        (3996, 0, Complexity.MEDIUM),
        (4000, 0, Complexity.HIGH),
        (10, 10, Complexity.HIGH),
    ],
)
def test_size_and_tool_count_pick_the_tier(chars: int, tools: int, expected: Complexity) -> None:
    assert estimate_complexity(request(chars, tools), THRESHOLDS) is expected


def test_an_explicit_hint_wins_over_size() -> None:
    assert estimate_complexity(request(10, complexity="HIGH"), THRESHOLDS) is Complexity.HIGH
    assert estimate_complexity(request(9000, complexity="low"), THRESHOLDS) is Complexity.LOW
    with pytest.raises(InvalidArgument, match="low, medium or high"):
        estimate_complexity(request(complexity="huge"), THRESHOLDS)


def test_route_returns_the_tier_chain_in_order() -> None:
    router = Router(TIERS, THRESHOLDS)
    route = router.route(request(4000))
    assert route.complexity is Complexity.HIGH
    assert route.chain == (BIG, MID)
    assert route.cache_model == "tier:high"
    assert router.route(request()).chain == (SMALL, MID)


def test_a_named_model_goes_to_the_targets_serving_it() -> None:
    router = Router(TIERS, THRESHOLDS)
    route = router.route(request(model="gpt-4o-mini"))
    assert route.chain == (MID,)
    assert route.cache_model == "gpt-4o-mini"


def test_an_unknown_named_model_is_asked_of_the_tier_providers() -> None:
    route = Router(TIERS, THRESHOLDS).route(request(model="llama-70b"))
    assert route.chain == (
        Target(provider="local", model="llama-70b"),
        Target(provider="openai", model="llama-70b"),
    )


def test_every_tier_needs_a_chain() -> None:
    with pytest.raises(ValueError, match="high"):
        Router({Complexity.LOW: [SMALL], Complexity.MEDIUM: [MID]})
