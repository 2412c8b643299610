from __future__ import annotations

import pytest

from keel_agent_loop.config import Settings


def test_defaults_match_the_fixed_ports_and_targets() -> None:
    s = Settings()
    assert (s.grpc_port, s.metrics_port) == (50051, 9101)
    assert (s.llm_target, s.tool_target, s.memory_target) == (
        "127.0.0.1:50052",
        "127.0.0.1:50053",
        "127.0.0.1:50055",
    )
    assert (s.call_timeout_s, s.llm_timeout_s) == (30, 120)
    assert (s.consumer_group, s.default_max_iterations, s.memory_token_budget) == (
        "keel-agent-loop",
        8,
        400,
    )
    assert "untrusted data" in s.system_prompt


def test_environment_overrides_with_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_AGENT_LOOP_LLM_TARGET", "llm:1")
    monkeypatch.setenv("KEEL_AGENT_LOOP_DEFAULT_MAX_ITERATIONS", "3")
    monkeypatch.setenv("KEEL_KAFKA_BOOTSTRAP", "broker:9092")
    s = Settings()
    assert (s.llm_target, s.default_max_iterations) == ("llm:1", 3)
    assert s.kafka.bootstrap == "broker:9092"
