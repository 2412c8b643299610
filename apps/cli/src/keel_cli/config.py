"""Settings of the keel command (env prefix ``KEEL_CLI_``; Kafka from ``KEEL_KAFKA_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_core.settings import KafkaSettings
from keel_core.trust import TrustSettings


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_CLI_", extra="ignore")

    agent_target: str = "127.0.0.1:50051"
    approval_target: str = "127.0.0.1:50056"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
