"""Settings of retries and circuit breakers (nested under the tool gateway's settings as
``resilience``: env ``KEEL_TOOL_GATEWAY_RESILIENCE__<FIELD>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ResilienceSettings(BaseModel):
    """Defaults for every tool; a tool narrows them with its own ``ToolResilience``.

    Retries: attempt ``n`` (from 1) that fails with a retryable error waits
    ``min(retry_max_backoff_s, retry_backoff_s * 2 ** (n - 1) + uniform(0, retry_jitter_s))``
    before the next one; no wait may end past the tool's time-out, which bounds all attempts
    together. Breakers: ``breaker_failure_threshold`` consecutive failures open a breaker for
    ``breaker_reset_timeout_s``; then one trial call decides between closed and open again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Attempts in all, the first one included: 1 turns retries off.
    retry_max_attempts: int = Field(default=3, ge=1, le=10)
    # Wait before the second attempt; each later wait doubles.
    retry_backoff_s: float = Field(default=0.1, ge=0)
    retry_max_backoff_s: float = Field(default=2.0, ge=0)
    # Random extra in [0, jitter] on every wait, so callers that failed together spread out.
    retry_jitter_s: float = Field(default=0.1, ge=0)
    breaker_enabled: bool = True
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0)
    # Alternatives tried when a tool's breaker is open, by tool name, in order; replaces the
    # tool's own ``Tool.fallbacks`` (how MCP tools get one), e.g.
    # KEEL_TOOL_GATEWAY_RESILIENCE__FALLBACKS='{"http_fetch": ["http_fetch_mirror"]}'.
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _backoff_fits(self) -> ResilienceSettings:
        if self.retry_max_backoff_s < self.retry_backoff_s:
            raise ValueError(
                f"retry_max_backoff_s ({self.retry_max_backoff_s}) is less than "
                f"retry_backoff_s ({self.retry_backoff_s})"
            )
        return self
