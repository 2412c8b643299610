"""The loop's ports over keel_clients and the Kafka sink, against fake peers: the loop runs
over the real wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.peers import CachedCatalogTools, MemoryContext
from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, RequestContext, ToolCall
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.testing import RecordingSink
from keel_clients import CallOptions, LLMClient, MemoryClient, ToolClient
from keel_contracts import errors
from keel_contracts.events import ApprovalRequested, TaskProgress
from keel_contracts.topics import APPROVAL_REQUESTS, TASK_EVENTS
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher

TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


@dataclass
class FakeLLMGateway(llm_pb2_grpc.LLMGatewayServicer):
    fail_first: int = 0
    requests: list[llm_pb2.CompleteRequest] = field(default_factory=list)
    traceparents: list[str] = field(default_factory=list)

    async def Complete(self, request: Any, context: Any) -> llm_pb2.CompleteResponse:
        self.requests.append(request)
        self.traceparents.append(dict(context.invocation_metadata()).get("traceparent", ""))
        if self.fail_first > 0:
            self.fail_first -= 1
            raise errors.Unavailable("provider restarting")
        usage = common_pb2.Usage(prompt_tokens=10, completion_tokens=3, cost_usd=0.002)
        if not any(m.role == "tool" for m in request.messages):
            call = common_pb2.ToolCall(id="c1", name="send", arguments_json='{"to": "x"}')
            message = common_pb2.ChatMessage(role="assistant", tool_calls=[call])
        else:
            message = common_pb2.ChatMessage(role="assistant", content="sent, pending approval")
        return llm_pb2.CompleteResponse(message=message, usage=usage, model="m1")


@dataclass
class FakeToolGateway(tool_pb2_grpc.ToolGatewayServicer):
    list_calls: int = 0
    executes: list[tool_pb2.ExecuteRequest] = field(default_factory=list)

    async def ListTools(self, request: Any, context: Any) -> tool_pb2.ListToolsResponse:
        self.list_calls += 1
        schema = json.dumps({"type": "object"})
        tool = tool_pb2.ToolDescriptor(name="send", description="d", parameters_json_schema=schema)
        return tool_pb2.ListToolsResponse(tools=[tool])

    async def Execute(self, request: Any, context: Any) -> tool_pb2.ExecuteResponse:
        self.executes.append(request)
        return tool_pb2.ExecuteResponse(
            status=tool_pb2.EXECUTE_STATUS_NEEDS_APPROVAL, policy_rule="approve-sends"
        )


class FakeMemoryService(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self) -> None:
        self.stored: list[Any] = []

    async def Store(self, request: Any, context: Any) -> memory_pb2.StoreResponse:
        self.stored.append(request)
        return memory_pb2.StoreResponse(id="m-1")

    async def Retrieve(self, request: Any, context: Any) -> memory_pb2.RetrieveResponse:
        assert request.token_budget == 400
        return memory_pb2.RetrieveResponse(items=[memory_pb2.MemoryItem(content="likes email")])


@dataclass
class Peers:
    llm: FakeLLMGateway
    tools: FakeToolGateway
    memory: FakeMemoryService
    channel: grpc.aio.Channel


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    llm, tools, memory = FakeLLMGateway(), FakeToolGateway(), FakeMemoryService()
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server, "keel.llm.v1.LLMGateway"),
            (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server, "keel.tool.v1.ToolGateway"),
            (
                memory,
                memory_pb2_grpc.add_MemoryServiceServicer_to_server,
                "keel.memory.v1.MemoryService",
            ),
        ],
        CollectorRegistry(),
    )
    await server.start()
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Peers(llm, tools, memory, channel)
    await server.stop(0)


async def test_the_loop_over_grpc_and_kafka_adapters(peers: Peers) -> None:
    published = InMemoryPublisher()
    recorded = RecordingSink()
    loop = AgentLoop(
        LLMClient(peers.channel, CallOptions(timeout_s=5), retries=2, backoff_s=0),
        CachedCatalogTools(ToolClient(peers.channel, CallOptions(timeout_s=5))),
        MemoryContext(MemoryClient(peers.channel, CallOptions(timeout_s=5))),
        TeeSink(recorded, KafkaEventSink(published)),
        LoopConfig("sys", memory_token_budget=400),
    )
    state = AgentState(
        session_id="s9", goal="email x", agent_id="a", agent_profile="ops", trace=TRACE
    )
    await loop.run(state)

    # The gateway answers NEEDS_APPROVAL: the session parks after the first iteration.
    assert (state.status, state.answer, state.iteration) == ("waiting_for_approval", "", 1)
    assert state.pending_approval is not None
    assert state.pending_approval.idempotency_key == "s9:1:0"
    assert peers.tools.list_calls == 1  # cached per profile
    [execute] = peers.tools.executes
    assert execute.idempotency_key == "s9:1:0"
    assert (execute.call.name, execute.call.arguments_json) == ("send", '{"to": "x"}')
    assert execute.context.session_id == "s9"
    assert execute.context.agent_profile == "ops"
    assert execute.context.traceparent == TRACE
    first = peers.llm.requests[0]
    assert [m.role for m in first.messages] == ["system", "system", "user"]
    assert "likes email" in first.messages[1].content
    assert [t.name for t in first.tools] == ["send"]
    assert peers.llm.traceparents[0] == TRACE
    assert len(peers.llm.requests) == 1

    events = published.envelopes(TASK_EVENTS)
    assert [e.data["kind"] for e in events] == recorded.kinds(include_state=True)
    assert all(e.type == TaskProgress.event_type for e in events)
    assert all(e.source == "agent-loop" and e.session_id == "s9" for e in events)
    assert all(e.trace == TRACE for e in events)
    assert {r.key for r in published.sent} == {b"s9"}
    [approval] = published.envelopes(APPROVAL_REQUESTS)
    assert approval.type == "keel.approval.requested"
    request = approval.parse(ApprovalRequested)
    assert (request.tool_name, request.idempotency_key) == ("send", "s9:1:0")
    assert "approve-sends" in request.consequences
    assert "to='x'" in request.consequences


async def test_llm_client_retries_unavailable_then_gives_up(peers: Peers) -> None:
    ctx = RequestContext(session_id="s")
    peers.llm.fail_first = 2
    reply = await LLMClient(
        peers.channel, CallOptions(timeout_s=5), retries=2, backoff_s=0
    ).complete(ctx, [], [])
    assert reply.model == "m1"
    assert len(peers.llm.requests) == 3

    peers.llm.fail_first = 5
    with pytest.raises(errors.Unavailable, match="provider restarting"):
        await LLMClient(peers.channel, CallOptions(timeout_s=5), retries=1, backoff_s=0).complete(
            ctx, [], []
        )


async def test_an_unreachable_memory_is_an_unavailable_error() -> None:
    async with insecure_channel("127.0.0.1:1") as channel:
        with pytest.raises(errors.Unavailable):
            await MemoryContext(MemoryClient(channel, CallOptions(timeout_s=1))).retrieve(
                RequestContext(session_id="s"), "q", 5
            )


async def test_memory_client_stores_an_episode(peers: Peers) -> None:
    ctx = RequestContext(session_id="s1", agent_id="a1")
    memory = MemoryContext(MemoryClient(peers.channel, CallOptions(timeout_s=5)))
    stored = await memory.store(ctx, "Goal: x", "episodic", {"session_id": "s1"})
    assert stored == "m-1"
    [request] = peers.memory.stored
    assert request.type == memory_pb2.MEMORY_TYPE_EPISODIC
    assert (request.content, dict(request.metadata)) == ("Goal: x", {"session_id": "s1"})
    assert request.context.session_id == "s1"


async def test_tool_client_sends_the_approval_id(peers: Peers) -> None:
    tools = CachedCatalogTools(ToolClient(peers.channel, CallOptions(timeout_s=5)))
    call = ToolCall(id="c", name="send", arguments_json="{}")
    await tools.execute(RequestContext(session_id="s1"), call, "s1:1:0", "appr-1")
    assert peers.tools.executes[-1].approval_id == "appr-1"
