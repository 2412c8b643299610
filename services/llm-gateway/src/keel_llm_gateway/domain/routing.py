"""Which models answer a request: complexity → a tier → an ordered chain of targets.

The heuristic, in order:
1. ``request.complexity`` ("low" / "medium" / "high") when the caller knows best (a planner
   asks "high", a summariser "low").
2. Otherwise the size of the job: the estimated prompt (messages + tool catalog, 4 characters a
   token) and the number of tools offered. At or past ``high_tokens`` tokens or ``high_tools``
   tools it is high; at or past the medium thresholds it is medium; else low. Long contexts
   and large catalogs are where small models lose the thread, so they go to bigger ones.

A request that names a model bypasses the tiers: the chain is every configured target serving
that model; when none does, the tier's providers are asked for that model by name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.errors import InvalidArgument
from keel_llm_gateway.domain.accounting import estimate_prompt_tokens
from keel_llm_gateway.domain.models import CompletionRequest

# Routes remembered per (complexity, model asked for); past this many they are made afresh.
MAX_ROUTES = 1024


class Complexity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Target(BaseModel):
    """One provider and the model to ask it for ("" = the provider's default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1)
    model: str = ""

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model or 'default'}"


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    medium_tokens: int = Field(default=1500, ge=0)
    high_tokens: int = Field(default=6000, ge=0)
    medium_tools: int = Field(default=6, ge=0)
    high_tools: int = Field(default=16, ge=0)


class Route(BaseModel):
    model_config = ConfigDict(frozen=True)

    complexity: Complexity
    chain: tuple[Target, ...]
    # What the cache key names as the model: the requested one, or the tier.
    cache_model: str


def estimate_complexity(
    request: CompletionRequest, thresholds: Thresholds, prompt_tokens: int | None = None
) -> Complexity:
    """``prompt_tokens``: the caller's estimate when it has one (else computed here)."""
    if request.complexity:
        try:
            return Complexity(request.complexity.strip().lower())
        except ValueError:
            raise InvalidArgument(
                f"complexity must be low, medium or high, not {request.complexity!r}"
            ) from None
    tokens = estimate_prompt_tokens(request) if prompt_tokens is None else prompt_tokens
    tools = len(request.tools)
    if tokens >= thresholds.high_tokens or tools >= thresholds.high_tools:
        return Complexity.HIGH
    if tokens >= thresholds.medium_tokens or tools >= thresholds.medium_tools:
        return Complexity.MEDIUM
    return Complexity.LOW


class Router:
    def __init__(
        self, tiers: Mapping[Complexity, Sequence[Target]], thresholds: Thresholds | None = None
    ) -> None:
        missing = [tier.value for tier in Complexity if not tiers.get(tier)]
        if missing:
            raise ValueError(f"no targets for tier(s): {', '.join(missing)}")
        self._tiers = {tier: tuple(tiers[tier]) for tier in Complexity}
        self._thresholds = thresholds or Thresholds()
        # A route depends only on the complexity and the model asked for, and is frozen: made
        # once per pair, not per request. Model names come from callers: bounded.
        self._routes: dict[tuple[Complexity, str], Route] = {}

    @classmethod
    def single(cls, target: Target) -> Router:
        """Every tier served by one target (one provider, no fallback)."""
        return cls(dict.fromkeys(Complexity, (target,)))

    @property
    def providers(self) -> set[str]:
        return {target.provider for chain in self._tiers.values() for target in chain}

    def route(self, request: CompletionRequest, prompt_tokens: int | None = None) -> Route:
        complexity = estimate_complexity(request, self._thresholds, prompt_tokens)
        key = (complexity, request.model)
        route = self._routes.get(key)
        if route is None:
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            route = self._routes[key] = self._route(complexity, request.model)
        return route

    def _route(self, complexity: Complexity, model: str) -> Route:
        tier = self._tiers[complexity]
        if not model:
            return Route(complexity=complexity, chain=tier, cache_model=f"tier:{complexity}")
        ordered = (*tier, *(t for c in Complexity for t in self._tiers[c]))
        serving = tuple(dict.fromkeys(t for t in ordered if t.model == model))
        chain = serving or tuple(dict.fromkeys(t.model_copy(update={"model": model}) for t in tier))
        return Route(complexity=complexity, chain=chain, cache_model=model)
