"""Each running service answers its gRPC contract (plus health and reflection)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_cli.stack import LocalStack
from keel_contracts.events import ApprovalRequested, Envelope
from keel_contracts.topics import APPROVAL_REQUESTS
from keel_core.bus import EventProducer
from keel_core.grpc import insecure_channel
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.stack

CTX = common_pb2.RequestContext(session_id="contract", agent_id="contract-test")


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
        async with insecure_channel(stack.target(service)) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=full_name), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_policy_and_tool_gateway(stack: LocalStack) -> None:
    async with insecure_channel(stack.target("policy")) as channel:
        policy = policy_pb2_grpc.PolicyServiceStub(channel)
        verdict = await policy.Evaluate(
            policy_pb2.EvaluateRequest(context=CTX, tool_name="rm", arguments_json="{}"),
            timeout=5,
        )
        assert (verdict.decision, verdict.rule_id) == (policy_pb2.DECISION_DENY, "default-deny")
    async with insecure_channel(stack.target("tool-gateway")) as channel:
        tools = tool_pb2_grpc.ToolGatewayStub(channel)
        listed = await tools.ListTools(tool_pb2.ListToolsRequest(), timeout=5)
        assert {"calculator", "clock", "noop"} <= {t.name for t in listed.tools}
        schema = json.loads(
            next(t for t in listed.tools if t.name == "calculator").parameters_json_schema
        )
        assert "expression" in schema["properties"]
        call = common_pb2.ToolCall(
            id="c1", name="calculator", arguments_json='{"expression": "2 + 3 * 4"}'
        )
        done = await tools.Execute(
            tool_pb2.ExecuteRequest(
                context=CTX, call=call, idempotency_key=f"contract:{uuid.uuid4().hex}:0"
            ),
            timeout=5,
        )
        assert (done.status, done.output) == (tool_pb2.EXECUTE_STATUS_OK, "14")


async def test_llm_gateway(stack: LocalStack) -> None:
    async with insecure_channel(stack.target("llm-gateway")) as channel:
        llm = llm_pb2_grpc.LLMGatewayStub(channel)
        reply = await llm.Complete(
            llm_pb2.CompleteRequest(
                context=CTX,
                messages=[common_pb2.ChatMessage(role="user", content="What is (2 + 2) * 3?")],
            ),
            timeout=10,
        )
        (call,) = reply.message.tool_calls
        assert call.name == "calculator"
        assert json.loads(call.arguments_json) == {"expression": "(2 + 2) * 3"}
        assert reply.usage.prompt_tokens > 0


async def test_memory_store_and_retrieve(stack: LocalStack) -> None:
    async with insecure_channel(stack.target("memory")) as channel:
        memory = memory_pb2_grpc.MemoryServiceStub(channel)
        fact = "The staging database runs on port 6543."
        stored = await memory.Store(
            memory_pb2.StoreRequest(
                context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content=fact
            ),
            timeout=10,
        )
        again = await memory.Store(
            memory_pb2.StoreRequest(
                context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content=fact
            ),
            timeout=10,
        )
        assert stored.id == again.id
        found = await memory.Retrieve(
            memory_pb2.RetrieveRequest(
                context=CTX,
                query="which port does the staging database use",
                token_budget=200,
                top_k=5,
            ),
            timeout=10,
        )
        assert found.items[0].content == fact
        assert found.tokens_used <= 200


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
    async with insecure_channel(stack.target("approval")) as channel:
        approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
        async with asyncio.timeout(30):
            while True:
                pending = await approvals.List(approval_pb2.ListRequest(), timeout=5)
                if approval_id in {a.id for a in pending.approvals}:
                    break
                await asyncio.sleep(0.2)
        resolved = await approvals.Resolve(
            approval_pb2.ResolveRequest(
                id=approval_id,
                outcome=approval_pb2.OUTCOME_APPROVE,
                reviewer="alice",
                comment="fine",
            ),
            timeout=5,
        )
        assert resolved.status == approval_pb2.APPROVAL_STATUS_APPROVED
        assert resolved.decided_by == "alice"
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await approvals.Resolve(
                approval_pb2.ResolveRequest(
                    id=approval_id, outcome=approval_pb2.OUTCOME_REJECT, reviewer="bob"
                ),
                timeout=5,
            )
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_agent_service_submit_and_get(stack: LocalStack) -> None:
    async with insecure_channel(stack.target("agent-loop")) as channel:
        agent = agent_pb2_grpc.AgentServiceStub(channel)
        submitted = await agent.Submit(agent_pb2.SubmitRequest(goal="What is 9 * 9?"), timeout=5)
        async with asyncio.timeout(60):
            while True:
                state = await agent.Get(
                    agent_pb2.GetRequest(session_id=submitted.session_id), timeout=5
                )
                if state.status == agent_pb2.SESSION_STATUS_COMPLETED:
                    break
                assert state.status != agent_pb2.SESSION_STATUS_FAILED, state.error
                await asyncio.sleep(0.2)
        assert "81" in state.answer
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await agent.Get(agent_pb2.GetRequest(session_id="no-such-session"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await agent.Submit(agent_pb2.SubmitRequest(goal=""), timeout=5)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_service_serves_prometheus_metrics(stack: LocalStack) -> None:
    for spec in stack.specs:
        url = f"http://127.0.0.1:{spec.metrics_port}/metrics"
        body = await asyncio.to_thread(lambda u=url: urllib.request.urlopen(u, timeout=5).read())
        text = body.decode()
        assert "keel_bus_messages_produced_total" in text, spec.name
        assert "keel_grpc_server_handling_seconds" in text, spec.name
