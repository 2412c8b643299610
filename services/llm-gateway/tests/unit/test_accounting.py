"""Usage estimation and pricing."""

from __future__ import annotations

import pytest

from keel_llm_gateway.domain.accounting import (
    ModelPrice,
    account,
    cost_usd,
    estimate_tokens,
    estimate_usage,
    price_for,
)
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ToolCall,
    ToolSpec,
    Usage,
)


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100)])
def test_estimate_is_ceil_of_chars_over_four(chars: int, tokens: int) -> None:
    assert estimate_tokens(chars) == tokens


def test_estimated_usage_counts_messages_tool_calls_and_catalog() -> None:
    request = CompletionRequest(
        messages=(
            ChatMessage(role="user", content="x" * 10),
            ChatMessage(
                role="assistant",
                tool_calls=(ToolCall(id="c", name="calc", arguments_json='{"a":1}'),),
            ),
        ),
        # name 4 + description 2 + canonical schema '{"type":"object"}' 17 = 23
        tools=(ToolSpec(name="calc", description="ab", parameters={"type": "object"}),),
    )
    answer = ChatMessage(role="assistant", content="y" * 9)
    usage = estimate_usage(request, answer)
    # prompt chars: 10 + (4 + 7) + 23 = 44 -> 11 tokens; completion: 9 chars -> 3 tokens
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (11, 3, True)


def test_cost_is_per_thousand_tokens() -> None:
    usage = Usage(prompt_tokens=2000, completion_tokens=500)
    assert cost_usd(usage, ModelPrice(prompt=0.5, completion=2.0)) == pytest.approx(2.0)
    assert cost_usd(usage, None) == 0.0


def test_price_lookup_prefers_exact_then_longest_family() -> None:
    prices = {
        "gpt-4o": ModelPrice(prompt=5),
        "gpt-4o-mini": ModelPrice(prompt=0.15),
    }
    assert price_for("gpt-4o-mini", prices) == ModelPrice(prompt=0.15)
    assert price_for("gpt-4o-mini-2024-07-18", prices) == ModelPrice(prompt=0.15)
    assert price_for("gpt-4o-2024-08-06", prices) == ModelPrice(prompt=5)
    assert price_for("gpt-4", prices) is None
    assert price_for("gpt-4omni", prices) is None


def test_account_keeps_reported_usage_and_prices_it() -> None:
    request = CompletionRequest(messages=(ChatMessage(role="user", content="hi"),))
    completion = Completion(
        message=ChatMessage(role="assistant", content="hello"),
        model="m",
        provider="p",
        usage=Usage(prompt_tokens=1000, completion_tokens=1000),
    )
    priced = account(request, completion, {"m": ModelPrice(prompt=1, completion=3)})
    assert priced.usage == Usage(prompt_tokens=1000, completion_tokens=1000, cost_usd=4.0)


def test_account_estimates_missing_usage() -> None:
    request = CompletionRequest(messages=(ChatMessage(role="user", content="12345678"),))
    completion = Completion(
        message=ChatMessage(role="assistant", content="1234"), model="free", provider="p"
    )
    priced = account(request, completion, {})
    assert priced.usage == Usage(prompt_tokens=2, completion_tokens=1, estimated=True)
