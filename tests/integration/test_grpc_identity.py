"""gRPC with identities, attacked on the running stack as a caller on the same network would:
each attempt here succeeded against the plaintext services before (any process could call
Execute, name any tenant, resolve an approval under any name, and reach the inbox under any
Host name at any login rate)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_cli.stack import LocalStack
from keel_contracts.events import AuditRecord, Envelope
from keel_contracts.topics import AUDIT
from keel_core import trust
from keel_core.bus.reader import read_topic
from keel_core.grpc import ClientCredentials, secure_channel
from keel_core.grpc.client import insecure_channel
from keel_core.grpc.tokens import mint_token
from keel_core.settings import KafkaSettings
from keel_core.trust import TlsIdentity

pytestmark = pytest.mark.stack

EXECUTE = "/keel.tool.v1.ToolGateway/Execute"


def _execute() -> tool_pb2.ExecuteRequest:
    request = tool_pb2.ExecuteRequest(idempotency_key="attack:0:0")
    request.call.id, request.call.name = "c1", "calculator"
    request.call.arguments_json = '{"expression": "1 + 1"}'
    return request


def _token(stack: LocalStack, **claims) -> str:  # type: ignore[no-untyped-def]
    material = trust.TrustMaterial(stack.trust_dir)
    return mint_token(material.token_signing_key(), **claims)


async def _denials(kafka: KafkaSettings, subject: str, actor: str) -> list[AuditRecord]:
    found: list[AuditRecord] = []
    async with asyncio.timeout(30):
        while not found:
            for record in await read_topic(kafka, AUDIT, "test-denied"):
                audit = Envelope.from_bytes(record.value or b"").parse(AuditRecord)
                if (audit.action, audit.subject, audit.actor) == (
                    "security.denied",
                    subject,
                    actor,
                ):
                    found.append(audit)
            if not found:
                await asyncio.sleep(0.3)
    return found


async def test_execute_from_an_unknown_identity_never_runs(
    stack: LocalStack, kafka: KafkaSettings, tmp_path: Path
) -> None:
    target = stack.target("tool-gateway")
    ours = trust.TrustMaterial(stack.trust_dir).tls_identity("agent-loop")
    foreign = trust.TrustMaterial(trust.generate(tmp_path / "other-ca")).tls_identity("agent-loop")
    unknown = [
        insecure_channel(target),  # plaintext
        grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ours.ca)),  # no cert
        # the agent loop's name, signed by another CA
        secure_channel(
            target, ClientCredentials(TlsIdentity("agent-loop", ours.ca, foreign.cert, foreign.key))
        ),
    ]
    for channel in unknown:
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await tool_pb2_grpc.ToolGatewayStub(channel).Execute(_execute(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # A known identity the table does not admit: refused with the reason, and audited.
    async with secure_channel(target, stack.credentials("memory")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await tool_pb2_grpc.ToolGatewayStub(channel).Execute(_execute(), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"service 'memory' may not call {EXECUTE}" in (denied.value.details() or "")
    (record, *_) = await _denials(kafka, EXECUTE, "memory")
    assert record.details["code"] == "PERMISSION_DENIED"
    assert "may not call" in record.details["reason"]


async def test_a_strict_tenant_token_cannot_submit_as_the_default_tenant(
    stack: LocalStack,
) -> None:
    token = _token(stack, sub="carol", tenant="strict", roles=["submitter"])
    async with secure_channel(stack.target("agent-loop"), stack.credentials(token=token)) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await agent_pb2_grpc.AgentServiceStub(ch).Submit(
                agent_pb2.SubmitRequest(goal="What is 1 + 1?", tenant="default"), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "tenant 'default' is not the token's tenant 'strict'" in (refused.value.details() or "")


async def test_resolve_needs_a_token_with_the_reviewer_role(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    resolve = approval_pb2.ResolveRequest(
        id="no-such-approval", outcome=approval_pb2.OUTCOME_APPROVE, reviewer="mallory"
    )
    target = stack.target("approval")
    async with secure_channel(target, stack.credentials()) as channel:  # no token
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(resolve, timeout=10)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    submitter = _token(stack, sub="mallory", tenant="default", roles=["submitter"])
    async with secure_channel(target, stack.credentials(token=submitter)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as no_role:
            await approval_pb2_grpc.ApprovalServiceStub(channel).Resolve(resolve, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as no_list:
            await approval_pb2_grpc.ApprovalServiceStub(channel).List(
                approval_pb2.ListRequest(), timeout=10
            )
    assert no_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs one of the roles ['reviewer']" in (no_role.value.details() or "")
    assert no_list.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await _denials(kafka, "/keel.approval.v1.ApprovalService/Resolve", "mallory")


def _http(url: str, host: str, data: dict[str, str] | None = None) -> int:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_the_inbox_refuses_a_foreign_host_and_throttles_failed_logins(
    stack: LocalStack,
) -> None:
    port = stack.spec("approval").web_port
    base = f"http://127.0.0.1:{port}"
    rebinding = await asyncio.to_thread(_http, f"{base}/login", f"attacker.example:{port}")
    assert rebinding == 400
    assert await asyncio.to_thread(_http, f"{base}/login", f"127.0.0.1:{port}") == 200
    guesses = [
        await asyncio.to_thread(
            _http, f"{base}/login", f"localhost:{port}", {"token": f"guess-{n}", "next": "/"}
        )
        for n in range(6)
    ]
    assert guesses == [401] * 5 + [429]
    # Even the right token waits out the window: the guesser cannot tell which was right.
    right = await asyncio.to_thread(
        _http, f"{base}/login", f"localhost:{port}", {"token": "t0ken", "next": "/"}
    )
    assert right == 429


async def test_a_session_is_seen_and_cancelled_only_by_its_own_tenant(stack: LocalStack) -> None:
    """Get, StreamEvents and Cancel take the tenant from the token too: another tenant's caller
    who learned a session id is told it does not exist (before, any caller could read any
    session's answer and cancel it)."""
    target = stack.target("agent-loop")
    acme = _token(stack, sub="ann", tenant="acme", roles=["submitter"])
    other = _token(stack, sub="oscar", tenant="other", roles=["submitter"])
    async with secure_channel(target, stack.credentials(token=acme)) as channel:
        owner = agent_pb2_grpc.AgentServiceStub(channel)
        submitted = await owner.Submit(agent_pb2.SubmitRequest(goal="What is 2 + 2?"), timeout=10)
        session = submitted.session_id
        seen = await owner.Get(agent_pb2.GetRequest(session_id=session), timeout=10)
        assert seen.session_id == session
    async with secure_channel(target, stack.credentials(token=other)) as channel:
        stranger = agent_pb2_grpc.AgentServiceStub(channel)
        calls = {
            "Get": stranger.Get(agent_pb2.GetRequest(session_id=session), timeout=10),
            "Cancel": stranger.Cancel(agent_pb2.CancelRequest(session_id=session), timeout=10),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND, name
        with pytest.raises(grpc.aio.AioRpcError) as unseen:
            async for _ in stranger.StreamEvents(
                agent_pb2.StreamEventsRequest(session_id=session), timeout=10
            ):
                pass
        assert unseen.value.code() == grpc.StatusCode.NOT_FOUND
