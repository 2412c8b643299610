"""The loop's ports over keel_clients and the Kafka sink, against fake peers: the loop runs
over the real wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.peers import CachedCatalogTools, MemoryContext
from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, RequestContext, ToolCall
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.testing import RecordingSink
from keel_clients import CallOptions, LLMClient, MemoryClient, ToolClient, open_channel
from keel_clients.testing import (
    ExecuteCall,
    FakeLLMGateway,
    FakeMemoryService,
    FakeToolGateway,
    serving,
)
from keel_contracts import errors
from keel_contracts.chat import ChatMessage, LLMReply, ToolSpec, Usage
from keel_contracts.events import ApprovalRequested, TaskProgress
from keel_contracts.memory import MemoryHit
from keel_contracts.tools import ToolOutcome
from keel_contracts.topics import APPROVAL_REQUESTS, TASK_EVENTS
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryPublisher

TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
USAGE = Usage(prompt_tokens=10, completion_tokens=3, cost_usd=0.002)
SEND = ToolSpec(name="send", description="d", parameters_json_schema='{"type": "object"}')


def answer(ctx: RequestContext, messages: list[ChatMessage]) -> LLMReply:
    """Ask for ``send`` until a tool result is in the history, then say so."""
    if not any(m.role == "tool" for m in messages):
        call = ToolCall(id="c1", name="send", arguments_json='{"to": "x"}')
        message = ChatMessage(role="assistant", tool_calls=(call,))
    else:
        message = ChatMessage(role="assistant", content="sent, pending approval")
    return LLMReply(message=message, usage=USAGE, model="m1")


def needs_approval(execute: ExecuteCall) -> ToolOutcome:
    return ToolOutcome(status="needs_approval", rule_id="approve-sends")


@dataclass
class Peers:
    llm: FakeLLMGateway
    tools: FakeToolGateway
    memory: FakeMemoryService
    channel: grpc.aio.Channel


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    llm = FakeLLMGateway(answer)
    llm.failure_message = "provider restarting"
    tools = FakeToolGateway({"ops": [SEND]}, needs_approval)
    memory = FakeMemoryService([MemoryHit(id="m0", type="semantic", content="x likes email")])
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (memory, memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        async with open_channel(target) as channel:
            yield Peers(llm, tools, memory, channel)


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
    assert peers.tools.listed == ["ops"]  # cached per profile
    [execute] = peers.tools.calls
    assert execute.idempotency_key == "s9:1:0"
    assert (execute.call.name, execute.call.arguments_json) == ("send", '{"to": "x"}')
    assert execute.ctx.session_id == "s9"
    assert execute.ctx.agent_profile == "ops"
    assert execute.ctx.traceparent == TRACE
    assert peers.memory.queries == [("email x", 400)]
    first = peers.llm.requests[0]
    assert [m.role for m in first.messages] == ["system", "user", "user"]
    assert "likes email" in first.messages[2].content
    assert [t.name for t in first.tools] == ["send"]
    assert first.traceparent == TRACE
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
    peers.llm.failures = 2
    reply = await LLMClient(
        peers.channel, CallOptions(timeout_s=5), retries=2, backoff_s=0
    ).complete(ctx, [], [])
    assert reply.model == "m1"
    assert len(peers.llm.requests) == 3

    peers.llm.failures = 5
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
    [entry] = [e for e in peers.memory.entries if e.type == "episodic"]
    assert stored == entry.id
    assert (entry.content, entry.metadata) == ("Goal: x", {"session_id": "s1"})
    assert entry.session_id == "s1"


async def test_tool_client_sends_the_approval_id(peers: Peers) -> None:
    tools = CachedCatalogTools(ToolClient(peers.channel, CallOptions(timeout_s=5)))
    call = ToolCall(id="c", name="send", arguments_json="{}")
    await tools.execute(RequestContext(session_id="s1"), call, "s1:1:0", "appr-1")
    assert peers.tools.calls[-1].approval_id == "appr-1"
