"""Token and cost accounting. Every completion leaves the gateway with usage and a cost, even
when the provider reported none, so budgets and the cost ledger never see a hole."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ToolSpec,
    Usage,
)

CHARS_PER_TOKEN = 4


class ModelPrice(BaseModel):
    """US dollars per 1,000 tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)


def estimate_tokens(chars: int) -> int:
    """The documented estimate for providers that report no usage: ``ceil(chars / 4)``.

    Four characters per token is the usual rule of thumb for English text with BPE tokenizers;
    it is an estimate for accounting, not a tokenizer, and usage records say so (``estimated``).
    """
    return math.ceil(chars / CHARS_PER_TOKEN)


def _message_chars(message: ChatMessage) -> int:
    calls = sum(len(call.name) + len(call.arguments_json) for call in message.tool_calls)
    return len(message.content) + calls


def _tool_chars(tools: Iterable[ToolSpec]) -> int:
    return sum(len(tool.name) + len(tool.description) + len(tool.parameters_json) for tool in tools)


def estimate_prompt_tokens(request: CompletionRequest) -> int:
    """Every message's content and tool calls plus the tool catalog (for routing, budget
    reservations and providers that report no usage)."""
    prompt_chars = sum(_message_chars(m) for m in request.messages) + _tool_chars(request.tools)
    return estimate_tokens(prompt_chars)


def estimate_usage(
    request: CompletionRequest, message: ChatMessage, prompt_tokens: int | None = None
) -> Usage:
    """Prompt: every message's content and tool calls plus the tool catalog (or the caller's
    ``prompt_tokens`` estimate of it); completion: the answer's content and tool calls."""
    return Usage(
        prompt_tokens=estimate_prompt_tokens(request) if prompt_tokens is None else prompt_tokens,
        completion_tokens=estimate_tokens(_message_chars(message)),
        estimated=True,
    )


def cost_usd(usage: Usage, price: ModelPrice | None) -> float:
    """Cost of one completion; a model without a price costs 0 (local models, the script)."""
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1000


def price_for(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """Exact name first, else the longest priced name the model extends with a dash, so a dated
    snapshot ("gpt-4o-mini-2024-07-18") is billed at its family's price ("gpt-4o-mini")."""
    if model in prices:
        return prices[model]
    family = [name for name in prices if model.startswith(name + "-")]
    return prices[max(family, key=len)] if family else None


def account(
    request: CompletionRequest,
    completion: Completion,
    prices: Mapping[str, ModelPrice],
    prompt_tokens: int | None = None,
) -> Completion:
    """The completion with usage filled in (estimated if missing) and priced."""
    usage = completion.usage or estimate_usage(request, completion.message, prompt_tokens)
    cost = cost_usd(usage, price_for(completion.model, prices))
    # Copies only of what changes (models are frozen: an unchanged one is reused as it is).
    priced = usage if usage.cost_usd == cost else usage.model_copy(update={"cost_usd": cost})
    if priced is completion.usage:
        return completion
    return completion.model_copy(update={"usage": priced})
