import json

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics


async def test_evaluate_decides_and_audits() -> None:
    audit, published = in_memory_audit("policy")
    audit.start()
    registry = CollectorRegistry()
    servicer = PolicyServicer(
        PolicyEngine(load_policy(DEFAULT_POLICY)), audit, PolicyMetrics(registry)
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                servicer,
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                "keel.policy.v1.PolicyService",
            )
        ],
        registry,
    )
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            ctx = common_pb2.RequestContext(session_id="s1", agent_id="agent-7")
            reply = await stub.Evaluate(
                policy_pb2.EvaluateRequest(
                    context=ctx,
                    tool_name="calculator",
                    arguments_json=json.dumps({"expression": "2 ** 99999"}),
                ),
                timeout=5,
            )
            assert reply.decision == policy_pb2.DECISION_DENY
            assert reply.rule_id == "deny-huge-powers"
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.Evaluate(
                    policy_pb2.EvaluateRequest(tool_name="calculator", arguments_json="{"),
                    timeout=5,
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            rules = await stub.ExplainRules(policy_pb2.ExplainRulesRequest(), timeout=5)
            assert rules.rules[0].id == "deny-huge-powers"
    finally:
        await server.stop(0)
        await audit.close()
    (record,) = published.audit_records()
    assert record.action == "policy.decision"
    assert record.actor == "agent-7"
    assert record.details["rule"] == "deny-huge-powers"
