"""Settings of the LLM gateway (env prefix ``KEEL_LLM_GATEWAY_``).

The simple case needs one variable: ``PROVIDER`` picks the provider that serves every tier.
Routing over several providers names extra ones in ``PROVIDERS`` (JSON) and lists, per tier,
the chain of (provider, model) to try in order in ``TIERS`` (JSON). docs/llm-gateway.md has a
full example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from keel_core.ratelimit import RateLimitSettings
from keel_core.settings import ServiceSettings
from keel_llm_gateway.domain.accounting import ModelPrice
from keel_llm_gateway.domain.budgets import BudgetLimits
from keel_llm_gateway.domain.routing import Complexity, Target, Thresholds

DEMO_SCENARIOS = Path(__file__).parent / "scenarios" / "demo.yaml"

ProviderKind = Literal["scripted", "openai", "local"]


class ProviderConfig(BaseModel):
    """An extra provider, by name in ``providers``. Fields a kind does not use are ignored;
    unset ones take the flat setting of the same kind (``openai_base_url``, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProviderKind
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    # The model asked for when a tier names none.
    model: str = ""
    scenario_file: Path | None = None
    # Check this provider's answers against the tools and retry once when malformed. None:
    # yes for "openai", no for "scripted" (answers as scripted) and "local" (checks itself).
    repair: bool | None = None


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_LLM_GATEWAY_", extra="ignore")

    grpc_port: int = 50052
    metrics_port: int = 9102
    # Token buckets per tenant/tool/model (docs/rate-limits.md): JSON, off until limits are set.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    # The default provider, named after its kind: "scripted" (deterministic answers from
    # scenario_file), "openai" (any OpenAI-compatible API), "local" (the offline GGUF model).
    provider: ProviderKind = "scripted"
    scenario_file: Path = DEMO_SCENARIOS
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = "gpt-4o-mini"
    # HTTP time-out of the openai provider; also the default per-attempt limit.
    request_timeout_s: float = Field(default=60.0, gt=0)
    # The local model (adapters/local_model.py; weights fetched by deploy/models/fetch.py).
    local_model: str = "qwen2.5-coder-0.5b"
    local_models_dir: Path = Field(default_factory=lambda: Path.home() / ".cache/keel/models")
    local_model_path: Path | None = None
    local_model_sha256: str = ""
    local_n_threads: int = Field(default=2, gt=0)
    # As large as the agent loop's default context window (8192), so a long session is trimmed
    # by the loop rather than refused here.
    local_n_ctx: int = Field(default=8192, gt=0)
    local_max_tokens: int = Field(default=512, gt=0)

    # More providers by name, as JSON: {"big": {"kind": "openai", "base_url": "...",
    # "api_key": "...", "model": "gpt-4o"}}.
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    # Per complexity tier, the chain to try in order, as JSON:
    # {"low": [{"provider": "local"}], "high": [{"provider": "big", "model": "gpt-4o"},
    #  {"provider": "local"}]}. Empty: every tier is served by ``provider`` alone. A tier left
    # out takes the next tier above it that is set (else the one below).
    tiers: dict[Complexity, list[Target]] = Field(default_factory=dict)
    routing: Thresholds = Field(default_factory=Thresholds)
    # Seconds one provider gets for one attempt (for a stream: between two events) before the
    # chain moves on. None: request_timeout_s.
    attempt_timeout_s: float | None = Field(default=None, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0)

    cache_enabled: bool = True
    cache_max_entries: int = Field(default=4096, ge=1)
    cache_ttl_s: float = Field(default=600.0, gt=0)

    # US dollars per 1,000 tokens by model, as JSON:
    # {"gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006}}. Unpriced models cost 0.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # Limits per session, agent and tenant, as JSON: {"session": {"tokens": 200000},
    # "tenant": {"cost_usd": 50}, "tenants": {"acme": {"cost_usd": 500}}}. Unset: unlimited.
    budgets: BudgetLimits = Field(default_factory=BudgetLimits)
    # Completion tokens reserved for a request that sets no max_tokens.
    budget_completion_reserve_tokens: int = Field(default=1024, ge=0)
    # With limits set, every replica shares one ledger on keel.llm.budget (ADR 0015): exact
    # across replicas and restarts. False: this process's memory only (N replicas may spend N
    # times a limit; a restart forgets). Without limits nothing is recorded either way.
    budget_shared: bool = True
    # A hold whose replica never settled it (killed mid-call) is dropped this long after it
    # was taken, by the records' clock: longer than the slowest call.
    budget_hold_ttl_s: float = Field(default=900.0, gt=0)
    # How long a reservation waits for its record to come back through the follower.
    budget_wait_s: float = Field(default=10.0, gt=0)
    # Check answers against the request's tools; one retry with the reason when malformed
    # (per provider: ProviderConfig.repair). False: never.
    repair_output: bool = True

    @model_validator(mode="after")
    def _known_providers(self) -> Settings:
        if self.provider in self.providers:
            raise ValueError(f"providers may not redefine the default provider {self.provider!r}")
        known = {self.provider, *self.providers}
        for tier, chain in self.tiers.items():
            if not chain:
                raise ValueError(f"tier {tier.value!r} has an empty chain")
            unknown = sorted({t.provider for t in chain} - known)
            if unknown:
                raise ValueError(f"tier {tier.value!r} names unknown provider(s): {unknown}")
        return self

    def tier_chains(self) -> dict[Complexity, list[Target]]:
        """Every tier's chain, gaps filled as documented on ``tiers``."""
        if not self.tiers:
            return dict.fromkeys(Complexity, [Target(provider=self.provider)])
        order = list(Complexity)
        filled: dict[Complexity, list[Target]] = {}
        for index, tier in enumerate(order):
            nearest = [*order[index:], *reversed(order[:index])]
            filled[tier] = next(self.tiers[t] for t in nearest if t in self.tiers)
        return filled
