"""Settings of the approval service (env prefix ``KEEL_APPROVAL_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from keel_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_APPROVAL_", extra="ignore")

    grpc_port: int = 50056
    metrics_port: int = 9106
    consumer_group: str = "keel-approval"
    # Changes a Watch stream may fall behind by before it is closed (the client reconnects).
    watch_queue_size: int = Field(default=1000, ge=1)
