"""Settings come from KEEL_LLM_GATEWAY_* and keep the API key secret."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keel_llm_gateway.config import DEMO_SCENARIOS, Settings
from keel_llm_gateway.domain.accounting import ModelPrice
from keel_llm_gateway.domain.routing import Complexity, Target


def test_defaults() -> None:
    settings = Settings()
    assert (settings.grpc_port, settings.metrics_port) == (50052, 9102)
    assert settings.provider == "scripted"
    assert settings.scenario_file == DEMO_SCENARIOS
    assert DEMO_SCENARIOS.is_file()
    assert settings.prices == {}


def test_environment_sets_provider_prices_and_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_LLM_GATEWAY_PROVIDER", "openai")
    monkeypatch.setenv("KEEL_LLM_GATEWAY_OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv(
        "KEEL_LLM_GATEWAY_PRICES", '{"gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006}}'
    )
    settings = Settings()
    assert settings.provider == "openai"
    assert settings.prices == {"gpt-4o-mini": ModelPrice(prompt=0.00015, completion=0.0006)}
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in settings.model_dump_json()


async def test_build_provider_follows_the_setting() -> None:
    from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider
    from keel_llm_gateway.adapters.scripted import ScriptedProvider
    from keel_llm_gateway.factory import build_provider

    scripted = build_provider(Settings(provider="scripted"))
    assert isinstance(scripted, ScriptedProvider)
    openai = build_provider(Settings(provider="openai"))
    assert isinstance(openai, OpenAICompatProvider)
    await openai.aclose()


def test_tiers_providers_budgets_and_cache_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_LLM_GATEWAY_PROVIDER", "scripted")
    monkeypatch.setenv(
        "KEEL_LLM_GATEWAY_PROVIDERS",
        '{"big": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": "sk-x",'
        ' "model": "gpt-4o"}}',
    )
    monkeypatch.setenv(
        "KEEL_LLM_GATEWAY_TIERS",
        '{"low": [{"provider": "scripted"}], "high": [{"provider": "big"},'
        ' {"provider": "scripted"}]}',
    )
    monkeypatch.setenv("KEEL_LLM_GATEWAY_BUDGETS", '{"session": {"tokens": 1000}}')
    monkeypatch.setenv("KEEL_LLM_GATEWAY_CACHE_TTL_S", "30")
    settings = Settings()
    chains = settings.tier_chains()
    assert [t.provider for t in chains[Complexity.LOW]] == ["scripted"]
    assert [t.provider for t in chains[Complexity.MEDIUM]] == ["big", "scripted"]  # next above
    assert [t.provider for t in chains[Complexity.HIGH]] == ["big", "scripted"]
    assert settings.budgets.session.tokens == 1000
    assert settings.cache_ttl_s == 30
    assert "sk-x" not in repr(settings)


def test_tiers_must_name_known_providers() -> None:
    with pytest.raises(ValueError, match="unknown provider"):
        Settings(tiers={Complexity.LOW: [Target(provider="nope")]})
    with pytest.raises(ValueError, match="empty chain"):
        Settings(tiers={Complexity.LOW: []})


async def test_app_builds_only_the_providers_tiers_use_with_models_filled_in() -> None:
    from keel_llm_gateway.config import ProviderConfig
    from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest
    from keel_llm_gateway.factory import build_gateway, build_providers, build_router
    from keel_llm_gateway.usecases.observer import NullObserver

    settings = Settings(
        provider="scripted",
        providers={
            "big": ProviderConfig(kind="openai", base_url="http://127.0.0.1:1/v1"),
            "unused": ProviderConfig(kind="local"),
        },
        tiers={
            Complexity.LOW: [Target(provider="scripted")],
            Complexity.HIGH: [Target(provider="big")],
        },
    )
    providers = build_providers(settings)
    assert sorted(providers) == ["big", "scripted"]
    assert providers["big"].name == "big"
    route = build_router(settings).route(
        CompletionRequest(messages=(ChatMessage(role="user", content="x"),), complexity="high")
    )
    assert route.chain == (Target(provider="big", model="gpt-4o-mini"),)
    gateway = build_gateway(settings, providers, NullObserver())
    answer = await gateway.complete(
        CompletionRequest(messages=(ChatMessage(role="user", content="What is 2 + 2?"),))
    )
    assert answer.provider == "scripted"
    for provider in providers.values():
        await provider.aclose()


def test_a_gateway_without_the_local_provider_never_imports_it() -> None:
    code = (
        "import sys\n"
        "from keel_llm_gateway.factory import build_providers\n"
        "from keel_llm_gateway.config import Settings\n"
        "build_providers(Settings(provider='scripted'))\n"
        "print('keel_llm_gateway.adapters.local_model' in sys.modules, 'llama_cpp' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
