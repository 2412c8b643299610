"""The policy service's real composition root on an in-memory runtime: the wiring itself is
under test (servicer, metrics, audit, hot reload), with a real gRPC server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.events import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryRuntime
from keel_policy.app import SERVICE, build
from keel_policy.config import Settings

POLICY = """
rules:
  - id: calc-ok
    priority: 10
    tool: calculator
    decision: allow
"""


async def test_the_built_service_decides_counts_and_audits(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = Settings(policy_file=policy_file, reload_interval_s=0)
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        request = policy_pb2.EvaluateRequest(
            context=common_pb2.RequestContext(session_id="s1", agent_id="a1"),
            tool_name="calculator",
            arguments_json=json.dumps({"expression": "1+1"}),
        )
        allowed = await stub.Evaluate(request)
        denied = await stub.Evaluate(
            policy_pb2.EvaluateRequest(tool_name="shell", arguments_json="{}")
        )
    assert allowed.decision == policy_pb2.DECISION_ALLOW
    assert allowed.rule_id == "calc-ok"
    assert denied.decision == policy_pb2.DECISION_DENY
    audited = [
        (envelope.session_id, envelope.parse(AuditRecord))
        for envelope in runtime.bus.envelopes(AUDIT)
    ]
    decisions = [(s, r.subject, r.actor) for s, r in audited if r.action == "policy.decision"]
    assert decisions == [("s1", "calculator", "a1"), ("", "shell", "unknown")]
    counted = runtime.registry.get_sample_value(
        "keel_policy_decisions_total",
        {"decision": "allow", "rule": "calc-ok", "policy_set": "default"},
    )
    assert counted == 1.0
