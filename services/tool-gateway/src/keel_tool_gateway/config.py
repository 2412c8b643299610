"""Settings of the tool gateway (env prefix ``KEEL_TOOL_GATEWAY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from keel_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_TOOL_GATEWAY_", extra="ignore")

    grpc_port: int = 50053
    metrics_port: int = 9103
    policy_target: str = "127.0.0.1:50054"
    # Deadline of each policy call; past it the call fails closed (nothing runs).
    policy_timeout_s: float = Field(default=2.0, gt=0)
    # Used for tools that do not name their own time-out.
    default_tool_timeout_s: float = Field(default=10.0, gt=0)
    # Output longer than this is cut, ending with a marker; 100 leaves room for the marker.
    max_output_chars: int = Field(default=8000, ge=100)
    approval_target: str = "127.0.0.1:50056"
    # Deadline of each approval lookup; past it a call sent with an approval id does not run.
    approval_timeout_s: float = Field(default=2.0, gt=0)
    # Set only in tests: registers the `count` tool, which counts its runs in files here.
    test_tools_dir: Path | None = None
