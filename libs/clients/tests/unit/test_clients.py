"""Each client against its in-process fake: the contract types survive the wire both ways,
failed statuses become typed errors, and credentials and trace travel as metadata."""

from __future__ import annotations

import grpc
import pytest

from keel.approval.v1 import approval_pb2_grpc
from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.policy.v1 import policy_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_clients import (
    ApprovalClient,
    CallOptions,
    LLMClient,
    MemoryClient,
    PolicyClient,
    ToolClient,
    open_channel,
)
from keel_clients.call import Caller
from keel_clients.mapping import MAX_CONTEXT_FIELD_CHARS, context_from_proto
from keel_clients.testing import (
    ExecuteCall,
    FakeApprovalService,
    FakeLLMGateway,
    FakeMemoryService,
    FakePolicyService,
    FakeToolGateway,
    serving,
    text,
)
from keel_contracts.approvals import ApprovalView
from keel_contracts.chat import ChatMessage, LLMReply, RequestContext, ToolCall, ToolSpec, Usage
from keel_contracts.errors import InvalidArgument, PermissionDenied, Unavailable
from keel_contracts.tools import ToolOutcome

CTX = RequestContext(
    session_id="s1",
    agent_id="a1",
    tenant="acme",
    agent_profile="research",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)
CALC = ToolSpec(name="calculator", description="maths", parameters_json_schema='{"type":"object"}')


async def test_llm_client_round_trips_messages_tools_and_usage() -> None:
    call = ToolCall(id="c1", name="calculator", arguments_json='{"expression":"2+2"}')
    reply = LLMReply(
        message=ChatMessage(role="assistant", content="", tool_calls=(call,)),
        usage=Usage(prompt_tokens=7, completion_tokens=3, cost_usd=0.25),
        model="m1",
    )
    fake = FakeLLMGateway([reply])
    history = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="hi"),
    ]
    async with serving((fake, llm_pb2_grpc.add_LLMGatewayServicer_to_server)) as target:
        async with open_channel(target) as channel:
            got = await LLMClient(channel).complete(CTX, history, [CALC])
    assert got.message.tool_calls == (call,)
    assert got.usage == reply.usage
    assert (got.model, got.provider) == ("m1", "fake")
    [sent] = fake.requests
    assert sent.ctx == CTX
    assert sent.messages == history
    assert sent.tools == [CALC]


async def test_llm_client_retries_unavailable_then_gives_up_with_a_typed_error() -> None:
    flaky = FakeLLMGateway([text("ok")], failures=2)
    down = FakeLLMGateway([text("never")], failures=10)
    async with (
        serving((flaky, llm_pb2_grpc.add_LLMGatewayServicer_to_server)) as flaky_target,
        serving((down, llm_pb2_grpc.add_LLMGatewayServicer_to_server)) as down_target,
        open_channel(flaky_target) as flaky_channel,
        open_channel(down_target) as down_channel,
    ):
        answer = await LLMClient(flaky_channel, retries=2, backoff_s=0.01).complete(CTX, [])
        with pytest.raises(Unavailable):
            await LLMClient(down_channel, retries=1, backoff_s=0.01).complete(CTX, [])
    assert answer.message.content == "ok"


async def test_tool_client_lists_the_profile_catalog_and_executes_once_per_key() -> None:
    runs: list[str] = []

    def run(execute: ExecuteCall) -> ToolOutcome:
        runs.append(execute.call.arguments_json)
        return ToolOutcome(status="error", error="no", rule_id="r9", duration_ms=1.5)

    fake = FakeToolGateway({"research": [CALC]}, run)
    call = ToolCall(id="c1", name="calculator", arguments_json="{}")
    async with serving((fake, tool_pb2_grpc.add_ToolGatewayServicer_to_server)) as target:
        async with open_channel(target) as channel:
            tools = ToolClient(channel)
            catalog = await tools.list_tools("research")
            empty = await tools.list_tools("other")
            first = await tools.execute(CTX, call, "s1:0:0", approval_id="ap-1")
            again = await tools.execute(CTX, call, "s1:0:0")
    assert catalog == [CALC]
    assert empty == []
    assert first == again == ToolOutcome(status="error", error="no", rule_id="r9", duration_ms=1.5)
    assert runs == ["{}"]
    assert fake.calls[0].ctx == CTX
    assert fake.calls[0].approval_id == "ap-1"


async def test_policy_client_maps_decisions_and_fails_closed_without_one() -> None:
    fake = FakePolicyService({"calculator": "allow", "send_email": "require_approval"})
    async with serving((fake, policy_pb2_grpc.add_PolicyServiceServicer_to_server)) as target:
        async with open_channel(target) as channel:
            policy = PolicyClient(channel)
            allowed = await policy.evaluate(CTX, "calculator", {"expression": "1"})
            held = await policy.evaluate(CTX, "send_email", {})
            denied = await policy.evaluate(CTX, "shell", {})
    assert (allowed.decision, allowed.rule_id, allowed.policy_set) == (
        "allow",
        "fake-allow",
        "fake",
    )
    assert held.decision == "require_approval"
    assert (denied.decision, denied.rule_id) == ("deny", "default-deny")
    assert fake.evaluations[0].arguments == {"expression": "1"}
    assert fake.evaluations[0].ctx.tenant == "acme"


async def test_memory_client_stores_and_retrieves_within_the_budget() -> None:
    fake = FakeMemoryService()
    async with serving((fake, memory_pb2_grpc.add_MemoryServiceServicer_to_server)) as target:
        async with open_channel(target) as channel:
            memory = MemoryClient(channel)
            first = await memory.store(CTX, "the deploy runs at noon", "semantic", {"k": "v"})
            again = await memory.store(CTX, "the deploy runs at noon", "semantic")
            await memory.store(CTX, "the deploy failed last week", "episodic")
            semantic = await memory.retrieve(CTX, "deploy", 100, types=["semantic"])
            tight = await memory.retrieve(CTX, "deploy", 5)
    assert first == again
    assert [(h.content, h.type, h.metadata) for h in semantic] == [
        ("the deploy runs at noon", "semantic", {"k": "v"})
    ]
    assert [h.content for h in tight] == ["the deploy runs at noon"]


async def test_approval_client_sends_the_token_and_maps_not_found_to_none() -> None:
    pending = ApprovalView(id="ap-1", status="pending", tool_name="send_email")
    fake = FakeApprovalService([pending])
    async with serving((fake, approval_pb2_grpc.add_ApprovalServiceServicer_to_server)) as target:
        async with open_channel(target) as channel:
            client = ApprovalClient(channel, CallOptions(token="t0k3n"))
            missing = await client.get("nope")
            listed = await client.list()
            decided = await client.resolve("ap-1", "approve", reviewer="alice", comment="fine")
            after = await client.list()
            everything = await client.list(include_resolved=True)
    assert missing is None
    assert listed == [pending]
    assert (decided.status, decided.decided_by, decided.comment) == ("approved", "alice", "fine")
    assert after == []
    assert [a.id for a in everything] == ["ap-1"]
    assert set(fake.tokens_seen) == {"Bearer t0k3n"}


async def test_a_refusal_arrives_as_the_matching_keel_error() -> None:
    fake = FakeLLMGateway([text("x")], failures=1, code=grpc.StatusCode.PERMISSION_DENIED)
    async with serving((fake, llm_pb2_grpc.add_LLMGatewayServicer_to_server)) as target:
        async with open_channel(target) as channel:
            with pytest.raises(PermissionDenied, match="PERMISSION_DENIED"):
                await LLMClient(channel, retries=3, backoff_s=0.01).complete(CTX, [])


def test_a_context_field_past_the_bound_is_refused_at_the_edge() -> None:
    """A megabyte of agent id would otherwise reach audit records the broker refuses (a fuzz
    finding: policy Evaluate answered INTERNAL)."""
    fine = common_pb2.RequestContext(agent_id="a" * MAX_CONTEXT_FIELD_CHARS, tenant="t")
    assert context_from_proto(fine).agent_id == "a" * MAX_CONTEXT_FIELD_CHARS
    for field in ("session_id", "agent_id", "tenant", "agent_profile", "traceparent"):
        huge = common_pb2.RequestContext(**{field: "x" * (MAX_CONTEXT_FIELD_CHARS + 1)})
        with pytest.raises(InvalidArgument, match=f"context.{field} is longer than"):
            context_from_proto(huge)


def test_a_malformed_traceparent_never_reaches_the_wire() -> None:
    """A record's trace field is whatever its writer put there; as gRPC metadata, text that is
    not valid header text makes grpc refuse the call itself (a fuzz finding: the agent loop's
    handler crashed with ExecuteBatchError)."""
    caller = Caller(CallOptions())
    valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert caller.metadata(RequestContext(traceparent=valid)) == (("traceparent", valid),)
    for hostile in ("\n\x00evil", "00-zz-yy-01", "🦜", valid + "\r\nx-injected: 1"):
        assert caller.metadata(RequestContext(traceparent=hostile)) is None, hostile
