"""Settings of the policy service (env prefix ``KEEL_POLICY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from keel_core.settings import ServiceSettings

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_POLICY_", extra="ignore")

    grpc_port: int = 50054
    metrics_port: int = 9104
    policy_file: Path = DEFAULT_POLICY
