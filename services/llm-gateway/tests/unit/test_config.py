"""Settings come from KEEL_LLM_GATEWAY_* and keep the API key secret."""

from __future__ import annotations

import pytest

from keel_llm_gateway.config import DEMO_SCENARIOS, Settings
from keel_llm_gateway.domain.accounting import ModelPrice


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
    from keel_llm_gateway.app import build_provider

    scripted = build_provider(Settings(provider="scripted"))
    assert isinstance(scripted, ScriptedProvider)
    openai = build_provider(Settings(provider="openai"))
    assert isinstance(openai, OpenAICompatProvider)
    await openai.aclose()
