"""Settings of the keel command (env prefix ``KEEL_CLI_``; Kafka from ``KEEL_KAFKA_*``, trust
material from ``KEEL_TRUST_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_core.settings import KafkaSettings
from keel_core.trust import TrustSettings


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_CLI_", extra="ignore")

    agent_target: str = "127.0.0.1:50051"
    approval_target: str = "127.0.0.1:50056"
    # `keel memory ingest` stores straight into the memory service.
    memory_target: str = "127.0.0.1:50055"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
    # The bearer token every gRPC call carries (a submitter's, a reviewer's: from the identity
    # provider or `keel dev token`). Empty with the dev token key in the trust directory: the
    # CLI mints itself a short-lived operator token (whoever holds that key is the issuer).
    token: str = Field(default="", repr=False)
    # The subject of that self-minted operator token.
    operator: str = "operator"
