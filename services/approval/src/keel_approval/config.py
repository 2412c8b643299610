"""Settings of the approval service (env prefix ``KEEL_APPROVAL_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from keel_core.ratelimit import RateLimitSettings
from keel_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_APPROVAL_", extra="ignore")

    grpc_port: int = 50056
    metrics_port: int = 9106
    # Token buckets per tenant (docs/rate-limits.md): JSON, off until limits are set.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    consumer_group: str = "keel-approval"
    # Changes a Watch stream may fall behind by before it is closed (the client reconnects).
    watch_queue_size: int = Field(default=1000, ge=1)
    # Read keel.approval.requests and keel.approval.decisions from the start before serving.
    rebuild_on_start: bool = True
    # A request without a deadline of its own times out this long after it arrived.
    default_timeout_s: float = Field(default=3600.0, gt=0)
    # How often overdue requests are looked for (and decided ones past retention forgotten).
    deadline_check_interval_s: float = Field(default=5.0, gt=0)
    # A decided request stays readable this long (the tool gateway checks an approval when
    # the parked call runs again), and at most this many are kept; then only its id is.
    decided_retention_s: float = Field(default=24 * 3600.0, gt=0)
    decided_max: int = Field(default=100_000, ge=1)
    # A decision may be acted on (the tool run) for this long after it was made: it is signed
    # with this expiry, and the agent loop and the tool gateway refuse it afterwards.
    decision_valid_s: float = Field(default=24 * 3600.0, gt=0)
    # Bearer token -> reviewer name (JSON in the env var): static reviewer credentials beside
    # the JWTs (role "reviewer") that the gRPC interceptor and the web inbox verify. With
    # neither (only in KEEL_TRUST_INSECURE_DEV) the reviewer is whatever the client claims.
    reviewer_tokens: dict[str, str] = Field(default_factory=dict, repr=False)
    # Tool-name glob -> distinct approvals needed, e.g. {"send_*": 2}; the strictest match wins.
    required_approvals: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # POSTed a Slack-style message on each new request; empty: no notifications.
    webhook_url: str = ""
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    # After the rebuild, keep reading keel.approval.decisions (no group): decisions and quorum
    # votes made by other replicas reach this one's book.
    follow_decisions: bool = True
    # With follow_decisions, reviewers' actions go to keel.approval.intents and every replica
    # folds them into one decision (ADR 0014); the replica whose action completed it publishes
    # it. Another replica publishes the same decision if it is not read back this long after.
    arbiter_grace_s: float = Field(default=3.0, gt=0)
    # The web inbox (HTML, served by this process); web_port 0 picks a free port.
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8086, ge=0, le=65535)
    # Mark the login cookie Secure: set when reviewers reach the inbox over HTTPS (a proxy).
    web_cookie_secure: bool = False
    # A reviewer's login lasts this long (sessions are kept in this process's memory).
    web_session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    # Host headers the inbox answers (a DNS-rebinding page reaches 127.0.0.1 under its own
    # name); the port is ignored. Add the proxy's public name when there is one.
    web_allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    # Failed logins one client address may make per minute before the inbox answers 429.
    web_login_failures_per_minute: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _reviewer_tokens_reach_the_interceptor(self) -> Settings:
        """The gRPC interceptor verifies callers from the trust settings: the static reviewer
        tokens travel there, so one list serves gRPC and the inbox."""
        if self.reviewer_tokens:
            merged = {**self.trust.reviewer_tokens, **self.reviewer_tokens}
            self.trust = self.trust.model_copy(update={"reviewer_tokens": merged})
        return self
