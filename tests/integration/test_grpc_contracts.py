"""Each running service answers its gRPC contract (plus health and reflection), called the
way every caller calls it: through its ``keel_clients`` client."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest

from keel_cli.stack import LocalStack
from keel_clients import (
    AgentClient,
    ApprovalClient,
    CallOptions,
    HealthClient,
    LLMClient,
    MemoryClient,
    PolicyClient,
    ToolClient,
    open_channel,
)
from keel_contracts.chat import ChatMessage, RequestContext, ToolCall
from keel_contracts.errors import FailedPrecondition, InvalidArgument, NotFound
from keel_contracts.events import ApprovalRequested, Envelope
from keel_contracts.sessions import TaskRequest
from keel_contracts.topics import APPROVAL_REQUESTS
from keel_core.bus import EventProducer
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.stack

# Tenant and profile left empty on the wire, as before the clients: the services pick defaults.
CTX = RequestContext(session_id="contract", agent_id="contract-test", tenant="", agent_profile="")


async def test_every_service_is_healthy_and_reflects_its_service(stack: LocalStack) -> None:
    names = {
        "agent-loop": "keel.agent.v1.AgentService",
        "llm-gateway": "keel.llm.v1.LLMGateway",
        "tool-gateway": "keel.tool.v1.ToolGateway",
        "policy": "keel.policy.v1.PolicyService",
        "memory": "keel.memory.v1.MemoryService",
        "approval": "keel.approval.v1.ApprovalService",
    }
    for service, full_name in names.items():
        async with open_channel(stack.target(service)) as channel:
            health = HealthClient(channel, CallOptions(timeout_s=5))
            assert await health.serving(full_name), service


async def test_policy_and_tool_gateway(stack: LocalStack) -> None:
    async with open_channel(stack.target("policy")) as channel:
        policy = PolicyClient(channel, CallOptions(timeout_s=5))
        verdict = await policy.evaluate(CTX, "rm", {})
        assert (verdict.decision, verdict.rule_id) == ("deny", "default-deny")
    async with open_channel(stack.target("tool-gateway")) as channel:
        tools = ToolClient(channel, CallOptions(timeout_s=5))
        listed = await tools.list_tools("")
        assert {"calculator", "clock", "noop"} <= {t.name for t in listed}
        schema = json.loads(
            next(t for t in listed if t.name == "calculator").parameters_json_schema
        )
        assert "expression" in schema["properties"]
        call = ToolCall(id="c1", name="calculator", arguments_json='{"expression": "2 + 3 * 4"}')
        done = await tools.execute(CTX, call, f"contract:{uuid.uuid4().hex}:0")
        assert (done.status, done.output) == ("ok", "14")


async def test_llm_gateway(stack: LocalStack) -> None:
    async with open_channel(stack.target("llm-gateway")) as channel:
        llm = LLMClient(channel, CallOptions(timeout_s=10))
        reply = await llm.complete(CTX, [ChatMessage(role="user", content="What is (2 + 2) * 3?")])
        (call,) = reply.message.tool_calls
        assert call.name == "calculator"
        assert json.loads(call.arguments_json) == {"expression": "(2 + 2) * 3"}
        assert reply.usage.prompt_tokens > 0


async def test_memory_store_and_retrieve(stack: LocalStack) -> None:
    async with open_channel(stack.target("memory")) as channel:
        memory = MemoryClient(channel, CallOptions(timeout_s=10))
        fact = "The staging database runs on port 6543."
        stored = await memory.store(CTX, fact, "semantic")
        again = await memory.store(CTX, fact, "semantic")
        assert stored == again
        found = await memory.retrieve(
            CTX, "which port does the staging database use", token_budget=200, top_k=5
        )
        assert found[0].content == fact
        # The reply's tokens_used is the sum of its items' tokens; the client keeps the items.
        assert sum(hit.tokens for hit in found) <= 200


async def test_approval_request_is_listed_and_resolved(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    approval_id = uuid.uuid4().hex
    producer = EventProducer(kafka, "test")
    await producer.start()
    try:
        request = ApprovalRequested(
            approval_id=approval_id,
            agent_id="agent",
            tool_name="send_email",
            arguments={"to": "ops@example.com"},
            reasoning="tell ops",
            idempotency_key=f"s:{approval_id}:0",
        )
        await producer.publish(
            APPROVAL_REQUESTS, Envelope.wrap(request, source="test", session_id="s-approval")
        )
    finally:
        await producer.stop()
    async with open_channel(stack.target("approval")) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        async with asyncio.timeout(30):
            while True:
                pending = await approvals.list()
                if approval_id in {a.id for a in pending}:
                    break
                await asyncio.sleep(0.2)
        resolved = await approvals.resolve(approval_id, "approve", reviewer="alice", comment="fine")
        assert resolved.status == "approved"
        assert resolved.decided_by == "alice"
        with pytest.raises(FailedPrecondition):
            await approvals.resolve(approval_id, "reject", reviewer="bob")


async def test_agent_service_submit_and_get(stack: LocalStack) -> None:
    async with open_channel(stack.target("agent-loop")) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=5))
        session_id = await agent.submit(TaskRequest(goal="What is 9 * 9?"))
        async with asyncio.timeout(60):
            while True:
                state = await agent.get(session_id)
                if state.status == "completed":
                    break
                assert state.status != "failed", state.error
                await asyncio.sleep(0.2)
        assert "81" in state.answer
        with pytest.raises(NotFound):
            await agent.get("no-such-session")
        with pytest.raises(InvalidArgument):
            await agent.submit(TaskRequest(goal=""))


async def test_every_service_serves_prometheus_metrics(stack: LocalStack) -> None:
    for spec in stack.specs:
        url = f"http://127.0.0.1:{spec.metrics_port}/metrics"
        body = await asyncio.to_thread(lambda u=url: urllib.request.urlopen(u, timeout=5).read())
        text = body.decode()
        assert "keel_bus_messages_produced_total" in text, spec.name
        assert "keel_grpc_server_handling_seconds" in text, spec.name
