"""Building the gateway's parts from settings: providers (only those a tier uses), the
router with every target's model filled in, the gateway with its breakers, cache and ledger.
The composition root (``app.build``) calls these; tests call them to check one part."""

from __future__ import annotations

from collections.abc import Mapping

from keel_core.resilience.breaker import CircuitBreaker
from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider
from keel_llm_gateway.adapters.scripted import ScriptedProvider
from keel_llm_gateway.config import ProviderConfig, Settings
from keel_llm_gateway.domain.budgets import BudgetLedger, Budgets
from keel_llm_gateway.domain.cache import ResponseCache
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.domain.routing import Complexity, Router, Target
from keel_llm_gateway.usecases.fallback import ChainCaller
from keel_llm_gateway.usecases.gateway import Gateway, GatewayOptions
from keel_llm_gateway.usecases.observer import GatewayObserver


def provider_configs(settings: Settings) -> dict[str, ProviderConfig]:
    """Every provider by name: the default one (named after its kind) and the extra ones."""
    default = ProviderConfig(kind=settings.provider)
    return {settings.provider: default, **settings.providers}


def default_model(config: ProviderConfig, settings: Settings) -> str:
    """The model a target without one is asked for (and priced as)."""
    if config.model:
        return config.model
    if config.kind == "openai":
        return settings.openai_model
    if config.kind == "local":
        return settings.local_model
    return ScriptedProvider.name


def repairing_providers(settings: Settings) -> frozenset[str]:
    """Providers whose answers the gateway checks (see ``ProviderConfig.repair``)."""
    return frozenset(
        name
        for name, config in provider_configs(settings).items()
        if (config.kind == "openai" if config.repair is None else config.repair)
    )


def build_named_provider(name: str, config: ProviderConfig, settings: Settings) -> Provider:
    """Built before the runtime, so a bad scenario file or a missing model file stops start-up
    before Kafka is touched."""
    if config.kind == "openai":
        key = config.api_key if config.api_key.get_secret_value() else settings.openai_api_key
        return OpenAICompatProvider(
            config.base_url or settings.openai_base_url,
            key,
            default_model(config, settings),
            settings.request_timeout_s,
            name=name,
        )
    if config.kind == "local":
        # Imported here: the gateway starts without llama-cpp-python when another provider
        # is chosen.
        from keel_llm_gateway.adapters.local_model import LocalModelProvider

        return LocalModelProvider.from_catalog(
            settings.local_model,
            settings.local_models_dir,
            model_path=settings.local_model_path,
            sha256=settings.local_model_sha256,
            n_threads=settings.local_n_threads,
            n_ctx=settings.local_n_ctx,
            max_tokens=settings.local_max_tokens,
        )
    return ScriptedProvider.from_file(config.scenario_file or settings.scenario_file)


def build_provider(settings: Settings) -> Provider:
    """The default provider alone."""
    return build_named_provider(settings.provider, ProviderConfig(kind=settings.provider), settings)


def build_router(settings: Settings) -> Router:
    """Tiers with every target's model filled in, so budgets can price it up front."""
    configs = provider_configs(settings)

    def filled(target: Target) -> Target:
        if target.model:
            return target
        model = default_model(configs[target.provider], settings)
        return target.model_copy(update={"model": model})

    chains: dict[Complexity, list[Target]] = {
        tier: [filled(t) for t in chain] for tier, chain in settings.tier_chains().items()
    }
    return Router(chains, settings.routing)


def build_gateway(
    settings: Settings,
    providers: Mapping[str, Provider],
    observer: GatewayObserver,
    budgets: Budgets | None = None,
) -> Gateway:
    """``budgets``: the shared ledger when limits are set (``app.build`` wires it); unset,
    this process's ledger."""
    breakers = {
        name: CircuitBreaker(
            name,
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout_s=settings.breaker_reset_timeout_s,
            observer=observer,
        )
        for name in providers
    }
    cache = (
        ResponseCache(max_entries=settings.cache_max_entries, ttl_s=settings.cache_ttl_s)
        if settings.cache_enabled
        else None
    )
    return Gateway(
        router=build_router(settings),
        chain=ChainCaller(
            providers,
            breakers,
            observer,
            settings.attempt_timeout_s or settings.request_timeout_s,
        ),
        prices=settings.prices,
        cache=cache,
        ledger=BudgetLedger(settings.budgets),
        observer=observer,
        options=GatewayOptions(
            completion_reserve_tokens=settings.budget_completion_reserve_tokens,
            repair=settings.repair_output,
            repair_providers=repairing_providers(settings),
        ),
        budgets=budgets,
    )


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The providers some tier uses; configured but unused ones are not built."""
    configs = provider_configs(settings)
    used = build_router(settings).providers
    return {name: build_named_provider(name, configs[name], settings) for name in sorted(used)}
