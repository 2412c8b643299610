"""The rate-limit interceptor on a real loopback server: the N+1th call of a tenant ends
RESOURCE_EXHAUSTED with a retry-after, before the handler runs; other tenants and methods
outside the rules are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_core import trust
from keel_core.grpc import (
    ClientCredentials,
    GrpcServer,
    ServerSecurity,
    insecure_channel,
    secure_channel,
)
from keel_core.grpc.ratelimit import RETRY_AFTER, limit_grpc
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import mint_token
from keel_core.ratelimit import Limit, RateLimiter, RateLimitSettings, rule
from keel_core.testing import FakeClock

EVALUATE = "/keel.policy.v1.PolicyService/Evaluate"


class Counting(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Evaluate(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        return policy_pb2.EvaluateResponse(rule_id="ok")

    async def ExplainRules(self, request, context):  # type: ignore[no-untyped-def]
        return policy_pb2.ExplainRulesResponse()


class _Runtime:
    def __init__(self, server: GrpcServer) -> None:
        self.grpc = server


@pytest.fixture
async def served() -> AsyncIterator[tuple[GrpcServer, Counting, CollectorRegistry, FakeClock]]:
    registry = CollectorRegistry()
    servicer = Counting()
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
    clock = FakeClock()
    settings = RateLimitSettings(
        limits={"calls": Limit(rate=0.5, burst=3)},
        grpc=[rule(EVALUATE, "calls", key="context.tenant")],
    )
    limit_grpc(_Runtime(server), RateLimiter(settings, clock))
    await server.start()
    yield server, servicer, registry, clock
    await server.stop(0)


def _request(tenant: str) -> policy_pb2.EvaluateRequest:
    request = policy_pb2.EvaluateRequest(tool_name="t")
    request.context.tenant = tenant
    return request


async def test_the_call_past_the_burst_is_refused_with_a_retry_after(served) -> None:  # type: ignore[no-untyped-def]
    server, servicer, registry, clock = served
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        for _ in range(3):
            await stub.Evaluate(_request("acme"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Evaluate(_request("acme"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(refused.value.trailing_metadata() or ())[RETRY_AFTER] == "2"
        assert "retry after 2 s" in (refused.value.details() or "")
        assert servicer.calls == 3  # the handler never ran for the refused call
        await stub.Evaluate(_request("other"), timeout=5)  # another tenant's bucket
        await stub.ExplainRules(policy_pb2.ExplainRulesRequest(), timeout=5)  # no rule
        clock.advance(2.0)
        await stub.Evaluate(_request("acme"), timeout=5)  # refilled
    refusals = registry.get_sample_value(
        "keel_grpc_server_handled_total", {"method": EVALUATE, "code": "RESOURCE_EXHAUSTED"}
    )
    assert refusals == 1


async def test_a_server_without_limits_lets_every_call_through() -> None:
    servicer = Counting()
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
        CollectorRegistry(),
    )
    # Rules but no limits: off, as every service is by default.
    limit_grpc(_Runtime(server), RateLimiter(RateLimitSettings(grpc=[rule(EVALUATE, "calls")])))
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            for _ in range(20):
                await stub.Evaluate(_request("acme"), timeout=5)
    finally:
        await server.stop(0)
    assert servicer.calls == 20


class Agent(agent_pb2_grpc.AgentServiceServicer):
    async def Submit(self, request, context):  # type: ignore[no-untyped-def]
        return agent_pb2.SubmitResponse(session_id=request.tenant)


async def test_on_a_secured_server_the_tenant_counted_is_the_tokens(tmp_path: Path) -> None:
    """The limit runs after authorization has bound the token's tenant into the request: a
    caller that names no tenant is counted under its own, not under ``-`` with everyone."""
    material = trust.TrustMaterial(trust.generate(tmp_path / "trust"))
    security = ServerSecurity(
        material.tls_identity("agent-loop"), token_verifier(material, trust.TrustSettings())
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                Agent(),
                agent_pb2_grpc.add_AgentServiceServicer_to_server,
                "keel.agent.v1.AgentService",
            )
        ],
        CollectorRegistry(),
        security,
    )
    settings = RateLimitSettings(
        limits={"submit": Limit(rate=0.01, burst=1)},
        grpc=[rule("/keel.agent.v1.AgentService/Submit", "submit")],
    )
    limit_grpc(_Runtime(server), RateLimiter(settings, FakeClock()))
    await server.start()

    async def submit(tenant: str) -> agent_pb2.SubmitResponse:
        minted = mint_token(
            material.token_signing_key(), sub="alice", tenant=tenant, roles=["submitter"]
        )
        credentials = ClientCredentials(material.tls_identity("operator"), minted)
        async with secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            reply: agent_pb2.SubmitResponse = await stub.Submit(
                agent_pb2.SubmitRequest(goal="g"), timeout=5
            )
            return reply

    try:
        assert (await submit("acme")).session_id == "acme"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await submit("acme")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "submit 'acme'" in (refused.value.details() or "")
        assert (await submit("beta")).session_id == "beta"
    finally:
        await server.stop(0)
