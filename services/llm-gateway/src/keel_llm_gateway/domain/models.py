"""The gateway's view of a chat completion, independent of protobuf and of any provider."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.canonical import canonical_json

# Shared with the other services; re-exported so the domain has one import site.
from keel_contracts.chat import ChatMessage as ChatMessage
from keel_contracts.chat import Role as Role
from keel_contracts.chat import ToolCall as ToolCall


class ToolSpec(BaseModel):
    """A tool as a model sees it. ``parameters`` is a JSON schema object."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @cached_property
    def canonical(self) -> str:
        """This tool's canonical JSON, made once: routing, accounting and the cache key all
        need it on every request (the model is frozen, so it cannot go stale)."""
        return canonical_json(self.model_dump(mode="json"))

    @cached_property
    def parameters_json(self) -> str:
        """The canonical JSON of ``parameters`` alone (usage estimates count it)."""
        return canonical_json(self.parameters)


class Scope(BaseModel):
    """Who pays: the budgets a completion is charged to. Only the tenant is part of the cache
    key (an answer never crosses tenants); two sessions of a tenant asking the same
    deterministic question may share an answer."""

    model_config = ConfigDict(frozen=True)

    session_id: str = ""
    agent_id: str = ""
    tenant: str = ""


class CompletionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    # Empty: the router picks (provider, model) by complexity; a provider given "" uses its
    # default model.
    model: str = ""
    temperature: float = 0.0
    # None: the provider's default limit.
    max_tokens: int | None = None
    # "low", "medium", "high" or "" (the gateway estimates it).
    complexity: str = ""
    # Opt in to the response cache for temperature > 0 (temperature 0 is always cacheable).
    cache: bool = False
    # None: the provider's own; otherwise sent to providers that take a seed and keyed in the
    # response cache (two seeds are two draws).
    seed: int | None = None
    scope: Scope = Scope()


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_usd: float = 0.0
    # True when the provider reported no usage and the gateway estimated it.
    estimated: bool = False


class Completion(BaseModel):
    model_config = ConfigDict(frozen=True)

    message: ChatMessage
    model: str
    provider: str
    # None until accounted: providers that report no usage leave it to the gateway.
    usage: Usage | None = None
    finish_reason: str = "stop"
    cached: bool = False


class TextDelta(BaseModel):
    """A piece of the answer's text as it is generated; progress only (the final
    ``Completion`` of a stream is the truth)."""

    model_config = ConfigDict(frozen=True)

    content: str


# What a provider's ``stream`` yields: deltas, then exactly one Completion.
StreamEvent = TextDelta | Completion
