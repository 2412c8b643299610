"""The secured gRPC profile on a real loopback server: mutual TLS with the local CA, the
authorization table, token callers bound to their tenant, refusals with a reason and a
record. Each attack here succeeded on the plaintext server every service used to run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_core import trust
from keel_core.grpc import ClientCredentials, GrpcServer, ServerSecurity, secure_channel
from keel_core.grpc.auth import current_principal
from keel_core.grpc.client import insecure_channel
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import mint_token
from keel_core.trust import TlsIdentity


class Tools(tool_pb2_grpc.ToolGatewayServicer):
    async def Execute(self, request, context):  # type: ignore[no-untyped-def]
        return tool_pb2.ExecuteResponse(output=f"ran for {current_principal().name}")


class Agent(agent_pb2_grpc.AgentServiceServicer):
    async def Submit(self, request, context):  # type: ignore[no-untyped-def]
        return agent_pb2.SubmitResponse(session_id=f"{request.tenant}/{current_principal().name}")


class Approvals(approval_pb2_grpc.ApprovalServiceServicer):
    async def Resolve(self, request, context):  # type: ignore[no-untyped-def]
        return approval_pb2.Approval(id=request.id, decided_by=current_principal().name)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> trust.TrustMaterial:
    return trust.TrustMaterial(trust.generate(tmp_path_factory.mktemp("trust")))


@pytest.fixture
async def served(material: trust.TrustMaterial) -> AsyncIterator[tuple[str, list[tuple]]]:
    denied: list[tuple] = []

    async def on_denied(method: str, who: str, reason: str, code: str) -> None:
        denied.append((method, who, reason, code))

    security = ServerSecurity(
        material.tls_identity("tool-gateway"),
        token_verifier(material, trust.TrustSettings()),
        on_denied,
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (Tools(), tool_pb2_grpc.add_ToolGatewayServicer_to_server, "keel.tool.v1.ToolGateway"),
            (
                Agent(),
                agent_pb2_grpc.add_AgentServiceServicer_to_server,
                "keel.agent.v1.AgentService",
            ),
            (
                Approvals(),
                approval_pb2_grpc.add_ApprovalServiceServicer_to_server,
                "keel.approval.v1.ApprovalService",
            ),
        ],
        CollectorRegistry(),
        security,
    )
    await server.start()
    yield f"127.0.0.1:{server.port}", denied
    await server.stop(0)


def creds(material: trust.TrustMaterial, identity: str, token: str = "") -> ClientCredentials:
    return ClientCredentials(material.tls_identity(identity), token)


def token(material: trust.TrustMaterial, **claims) -> str:  # type: ignore[no-untyped-def]
    claims.setdefault("sub", "alice")
    claims.setdefault("tenant", "strict")
    claims.setdefault("roles", ["submitter"])
    return mint_token(material.token_signing_key(), **claims)


def execute() -> tool_pb2.ExecuteRequest:
    return tool_pb2.ExecuteRequest(idempotency_key="s:0:0")


async def test_the_agent_loop_identity_may_execute(material, served) -> None:  # type: ignore[no-untyped-def]
    target, denied = served
    async with secure_channel(target, creds(material, "agent-loop")) as channel:
        reply = await tool_pb2_grpc.ToolGatewayStub(channel).Execute(execute(), timeout=5)
    assert reply.output == "ran for agent-loop"
    assert denied == []


async def test_another_service_identity_is_refused_with_a_reason_and_a_record(
    material, served
) -> None:  # type: ignore[no-untyped-def]
    target, denied = served
    async with secure_channel(target, creds(material, "policy")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tool_pb2_grpc.ToolGatewayStub(channel).Execute(execute(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "service 'policy' may not call /keel.tool.v1.ToolGateway/Execute" in (
        refused.value.details() or ""
    )
    [(method, who, reason, code)] = denied
    assert (method, who, code) == (
        "/keel.tool.v1.ToolGateway/Execute",
        "policy",
        "PERMISSION_DENIED",
    )
    assert "may not call" in reason


async def test_no_client_certificate_or_a_foreign_ca_never_reaches_a_method(
    material, served, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    target, _ = served
    foreign = trust.TrustMaterial(trust.generate(tmp_path / "foreign"))
    intruder = foreign.tls_identity("agent-loop")  # the right name, from another CA
    attempts = [
        # trusts our CA but presents no certificate
        grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(material.tls_identity("agent-loop").ca)
        ),
        secure_channel(
            target,
            ClientCredentials(
                TlsIdentity(
                    "agent-loop",
                    material.tls_identity("agent-loop").ca,
                    intruder.cert,
                    intruder.key,
                )
            ),
        ),
        insecure_channel(target),
    ]
    for channel in attempts:
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await tool_pb2_grpc.ToolGatewayStub(channel).Execute(execute(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_token_of_one_tenant_cannot_name_another(material, served) -> None:  # type: ignore[no-untyped-def]
    target, denied = served
    async with secure_channel(target, creds(material, "operator", token(material))) as channel:
        agent = agent_pb2_grpc.AgentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await agent.Submit(agent_pb2.SubmitRequest(goal="g", tenant="default"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "tenant 'default' is not the token's tenant 'strict'" in (
            refused.value.details() or ""
        )
        # The tenant left empty is the token's; the caller is the token's subject.
        reply = await agent.Submit(agent_pb2.SubmitRequest(goal="g"), timeout=5)
        assert reply.session_id == "strict/alice"
    assert [code for *_, code in denied] == ["PERMISSION_DENIED"]


async def test_resolve_needs_a_reviewer_token(material, served) -> None:  # type: ignore[no-untyped-def]
    target, denied = served
    resolve = approval_pb2.ResolveRequest(id="a1", reviewer="mallory")
    async with secure_channel(target, creds(material, "operator")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as no_token:
            await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(resolve, timeout=5)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    submitter = creds(material, "operator", token(material, roles=["submitter"]))
    async with secure_channel(target, submitter) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as no_role:
            await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(resolve, timeout=5)
    assert no_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs one of the roles ['reviewer']" in (no_role.value.details() or "")
    reviewer = creds(material, "operator", token(material, roles=["reviewer"], sub="rita"))
    async with secure_channel(target, reviewer) as channel:
        done = await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(resolve, timeout=5)
    assert done.decided_by == "rita"
    assert [code for *_, code in denied] == ["UNAUTHENTICATED", "PERMISSION_DENIED"]


async def test_forged_or_expired_tokens_are_unauthenticated(material, served) -> None:  # type: ignore[no-untyped-def]
    target, _ = served
    forged = mint_token(
        Ed25519PrivateKey.generate(), sub="eve", tenant="default", roles=["reviewer"]
    )
    expired = token(material, roles=["reviewer"], now=time.time() - 7200)
    for bad in (forged, expired, "not-a-jwt"):
        async with secure_channel(target, creds(material, "operator", bad)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(
                    approval_pb2.ResolveRequest(id="a1"), timeout=5
                )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_answers_any_authenticated_caller_and_reflection_is_off(
    material, served
) -> None:  # type: ignore[no-untyped-def]
    target, _ = served
    async with secure_channel(target, creds(material, "operator")) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        call = reflect(iter(()), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_profile_and_agent_claims_bind_the_request_context_too() -> None:
    from keel_contracts.errors import PermissionDenied
    from keel_core.grpc.auth import bind_to_token
    from keel_core.grpc.tokens import Principal

    principal = Principal("bot", "token", tenant="acme", profile="ops", agent="a1")
    request = tool_pb2.ExecuteRequest()
    bind_to_token(request, principal)
    assert (request.context.tenant, request.context.agent_profile, request.context.agent_id) == (
        "acme",
        "ops",
        "a1",
    )
    request.context.agent_profile = "admin"
    with pytest.raises(PermissionDenied, match="agent_profile 'admin' is not the token's profile"):
        bind_to_token(request, principal)
    # An operator's "*" tenant leaves the tenant the caller named.
    anywhere = Principal("op", "token", tenant="*")
    submit = agent_pb2.SubmitRequest(tenant="strict")
    bind_to_token(submit, anywhere)
    assert submit.tenant == "strict"
