"""Settings of the tool gateway (env prefix ``KEEL_TOOL_GATEWAY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from keel_core.ratelimit import RateLimitSettings
from keel_core.settings import ServiceSettings
from keel_tool_gateway.adapters.mcp import McpSettings
from keel_tool_gateway.adapters.memory import MemorySettings
from keel_tool_gateway.adapters.sandbox import SandboxSettings
from keel_tool_gateway.adapters.tools.files import FileSettings
from keel_tool_gateway.adapters.tools.http_fetch import HttpFetchSettings
from keel_tool_gateway.domain.registry import ProfileSettings
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings


class Settings(ServiceSettings):
    # Nested settings read as KEEL_TOOL_GATEWAY_<FIELD>__<SUBFIELD>, e.g.
    # KEEL_TOOL_GATEWAY_HTTP_FETCH__ALLOWED_DOMAINS='["example.com"]'.
    model_config = SettingsConfigDict(
        env_prefix="KEEL_TOOL_GATEWAY_", extra="ignore", env_nested_delimiter="__"
    )

    grpc_port: int = 50053
    metrics_port: int = 9103
    # Token buckets per tenant/tool/model (docs/rate-limits.md): JSON, off until limits are set.
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    policy_target: str = "127.0.0.1:50054"
    # Deadline of each policy call; past it the call fails closed (nothing runs).
    policy_timeout_s: float = Field(default=2.0, gt=0)
    # Used for tools that do not name their own time-out.
    default_tool_timeout_s: float = Field(default=10.0, gt=0)
    # Output longer than this is cut, ending with a marker; 100 leaves room for the marker.
    max_output_chars: int = Field(default=8000, ge=100)
    # Ledger entries older than this are tombstoned (every replica loads the whole ledger at
    # start): longer than the agent loop's finished-session markers, so no retried key can
    # still arrive. Checked every ledger_sweep_interval_s.
    ledger_retention_s: float = Field(default=8 * 24 * 3600.0, gt=0)
    ledger_sweep_interval_s: float = Field(default=600.0, gt=0)
    # An at_most_once tool's intent says its run is over by its time-out plus this much; a
    # key whose intent is older without a result was cut short and answers "outcome unknown".
    intent_grace_s: float = Field(default=10.0, gt=0)
    approval_target: str = "127.0.0.1:50056"
    # Deadline of each approval lookup; past it a call sent with an approval id does not run.
    approval_timeout_s: float = Field(default=2.0, gt=0)
    # Set only in tests: registers the `count` and `count_once` tools, which count their
    # effects in files here.
    test_tools_dir: Path | None = None
    # Which tools each agent profile is offered (ListTools).
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
    http_fetch: HttpFetchSettings = Field(default_factory=HttpFetchSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    # The `python` tool's sandbox (docs/sandbox.md).
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # Retries with backoff and circuit breakers for tools that declare retryable failures.
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    # Wrap Execute's output in <tool_output trust="untrusted">. Off by default: the agent loop
    # marks tool output itself when it shows it to a model; turn on for other callers.
    mark_untrusted_output: bool = False
    # A tool call whose audit record cannot be written is not run or answered (UNAVAILABLE);
    # true runs and answers it anyway, logging the lost record.
    audit_fail_open: bool = False
