"""Settings of the policy service (env prefix ``KEEL_POLICY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from keel_core.ratelimit import RateLimitSettings
from keel_core.settings import ServiceSettings

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_POLICY_", extra="ignore")

    grpc_port: int = 50054
    metrics_port: int = 9104
    # Token buckets per tenant (docs/rate-limits.md): JSON, off until limits are set.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    # A policy file, or a directory whose *.yaml / *.yml files are loaded together.
    policy_file: Path = DEFAULT_POLICY
    # Seconds between checks of the policy files for changes (hot reload); 0 turns it off.
    reload_interval_s: float = Field(default=2.0, ge=0)
    # Seconds between refreshes of topic-backed lists from keel.policy.lists (0: at start only).
    lists_refresh_s: float = Field(default=0.5, ge=0)
