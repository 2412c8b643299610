"""Settings of the LLM gateway (env prefix ``KEEL_LLM_GATEWAY_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from keel_core.settings import ServiceSettings
from keel_llm_gateway.domain.accounting import ModelPrice

DEMO_SCENARIOS = Path(__file__).parent / "scenarios" / "demo.yaml"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_LLM_GATEWAY_", extra="ignore")

    grpc_port: int = 50052
    metrics_port: int = 9102
    # "scripted": deterministic answers from scenario_file; "openai": any OpenAI-compatible API.
    provider: Literal["scripted", "openai"] = "scripted"
    scenario_file: Path = DEMO_SCENARIOS
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = "gpt-4o-mini"
    request_timeout_s: float = Field(default=60.0, gt=0)
    # US dollars per 1,000 tokens by model, as JSON:
    # {"gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006}}. Unpriced models cost 0.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
