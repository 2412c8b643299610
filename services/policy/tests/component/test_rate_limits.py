"""Calls per tenant as the policy service wires them (the same wiring as memory and approval):
past a tenant's burst a call is refused RESOURCE_EXHAUSTED with a retry-after; another
tenant's calls are not."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_core.grpc import insecure_channel
from keel_core.ratelimit import Limit, RateLimitSettings
from keel_core.testing import InMemoryRuntime
from keel_policy.app import SERVICE, build
from keel_policy.config import Settings


def _evaluate(tenant: str) -> policy_pb2.EvaluateRequest:
    return policy_pb2.EvaluateRequest(
        context=common_pb2.RequestContext(session_id="s1", tenant=tenant),
        tool_name="calculator",
        arguments_json="{}",
    )


async def test_a_tenant_past_its_calls_burst_is_refused(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("rules: []\n")
    settings = Settings(
        policy_file=policy_file,
        reload_interval_s=0,
        rate_limits=RateLimitSettings(limits={"calls": Limit(rate=0.01, burst=1)}),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        await stub.Evaluate(_evaluate("acme"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Evaluate(_evaluate("acme"))
        other = await stub.Evaluate(_evaluate("beta"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # 100 s for the next token, less what passed since the first call.
    assert 90 <= int(dict(refused.value.trailing_metadata() or ())["retry-after"]) <= 100
    assert "calls 'acme'" in (refused.value.details() or "")
    assert other.decision == policy_pb2.DECISION_DENY  # answered (no rule allows it)
