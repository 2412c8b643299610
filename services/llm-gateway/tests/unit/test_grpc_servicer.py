"""The real servicer on an in-process gRPC server, with the scripted provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_clients.call import call_with_errors
from keel_contracts import errors
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_llm_gateway.adapters.scripted import ScriptedProvider
from keel_llm_gateway.config import DEMO_SCENARIOS
from keel_llm_gateway.domain.accounting import ModelPrice
from keel_llm_gateway.domain.models import Completion, CompletionRequest, StreamEvent
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.domain.streaming import split_text
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.usecases.completions import Completions
from keel_llm_gateway.usecases.gateway import Gateway

GOAL = "What is (17 * 23) + 4?"
CONTEXT = common_pb2.RequestContext(
    session_id="s-1", agent_id="agent-7", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
)


class Down:
    name = "down"

    async def complete(self, request: CompletionRequest) -> Completion:
        raise errors.Unavailable("provider is down")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        raise errors.Unavailable("provider is down")
        yield  # an async generator that fails before its first event

    async def aclose(self) -> None:
        pass


@dataclass
class Running:
    stub: llm_pb2_grpc.LLMGatewayStub
    published: InMemoryPublisher
    registry: CollectorRegistry


async def start(provider: Provider) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    audit, published = in_memory_audit("llm-gateway")
    audit.start()
    metrics = LLMMetrics(registry)
    gateway = Gateway.single(
        provider, {"scripted": ModelPrice(prompt=1.0, completion=2.0)}, observer=metrics
    )
    servicer = LLMGatewayServicer(Completions(gateway, audit, metrics))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, llm_pb2_grpc.add_LLMGatewayServicer_to_server, "keel.llm.v1.LLMGateway")],
        registry,
    )
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield Running(llm_pb2_grpc.LLMGatewayStub(channel), published, registry)
    finally:
        await server.stop(0)
        await audit.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Running]:
    async for running in start(ScriptedProvider.from_file(DEMO_SCENARIOS)):
        yield running


@pytest.fixture
async def down() -> AsyncIterator[Running]:
    async for running in start(Down()):
        yield running


def ask(*messages: common_pb2.ChatMessage) -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=CONTEXT,
        messages=[
            common_pb2.ChatMessage(role="system", content="You are careful."),
            common_pb2.ChatMessage(role="user", content=GOAL),
            *messages,
        ],
        tools=[
            llm_pb2.ToolSpec(
                name="calculator",
                description="Arithmetic",
                parameters_json_schema='{"type": "object"}',
            )
        ],
    )


async def test_complete_returns_the_tool_call_and_audits_without_contents(
    scripted: Running,
) -> None:
    reply = await scripted.stub.Complete(ask(), timeout=5)
    assert reply.provider == "scripted"
    assert reply.model == "scripted"
    assert reply.finish_reason == "tool_calls"
    [call] = reply.message.tool_calls
    assert (call.id, call.name) == ("call_0_0", "calculator")
    assert json.loads(call.arguments_json) == {"expression": "(17 * 23) + 4"}
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    expected_cost = (reply.usage.prompt_tokens * 1.0 + reply.usage.completion_tokens * 2.0) / 1000
    assert reply.usage.cost_usd == pytest.approx(expected_cost)

    [record] = scripted.published.audit_records()
    assert record.action == "llm.completion"
    assert (record.actor, record.subject) == ("agent-7", "scripted")
    assert record.details == {
        "model": "scripted",
        "provider": "scripted",
        "tenant": "",
        "prompt_tokens": reply.usage.prompt_tokens,
        "completion_tokens": reply.usage.completion_tokens,
        "usage_estimated": True,
        "cost_usd": pytest.approx(expected_cost),
        "finish_reason": "tool_calls",
        "cached": False,
        "tool_calls": ["calculator"],
    }
    raw = scripted.published.sent[0].value or b""
    assert b"17 * 23" not in raw
    assert b"You are careful" not in raw
    [envelope] = scripted.published.envelopes("keel.audit")
    assert envelope.session_id == "s-1"
    assert envelope.trace == CONTEXT.traceparent

    tokens = scripted.registry.get_sample_value(
        "keel_llm_tokens_total", {"model": "scripted", "kind": "prompt"}
    )
    assert tokens == reply.usage.prompt_tokens
    assert scripted.registry.get_sample_value(
        "keel_llm_cost_usd_total", {"model": "scripted"}
    ) == pytest.approx(expected_cost)
    assert (
        scripted.registry.get_sample_value(
            "keel_llm_request_seconds_count", {"provider": "scripted"}
        )
        == 1
    )


async def test_second_turn_answers_with_the_tool_result(scripted: Running) -> None:
    first = await scripted.stub.Complete(ask(), timeout=5)
    result = common_pb2.ChatMessage(role="tool", content="395", tool_call_id="call_0_0")
    reply = await scripted.stub.Complete(ask(first.message, result), timeout=5)
    assert reply.message.content == "The answer is 395."
    assert reply.finish_reason == "stop"
    assert scripted.published.audit_records()[-1].details["tool_calls"] == []


async def test_stream_yields_content_chunks_then_the_final_response(scripted: Running) -> None:
    first = await scripted.stub.Complete(ask(), timeout=5)
    result = common_pb2.ChatMessage(role="tool", content="395", tool_call_id="call_0_0")
    chunks = [c async for c in scripted.stub.CompleteStream(ask(first.message, result), timeout=5)]
    deltas = [c.delta for c in chunks[:-1]]
    assert len(deltas) > 1
    assert "".join(deltas) == "The answer is 395."
    assert all(not c.HasField("final") for c in chunks[:-1])
    final = chunks[-1]
    assert final.delta == ""
    assert final.final.message.content == "The answer is 395."
    assert final.final.usage.completion_tokens > 0
    assert len(scripted.published.audit_records()) == 2


async def test_invalid_requests_are_invalid_argument(scripted: Running) -> None:
    bad_role = common_pb2.ChatMessage(role="wizard", content="x")
    with pytest.raises(errors.InvalidArgument, match="unknown message role 'wizard'"):
        await call_with_errors(lambda: scripted.stub.Complete(ask(bad_role), timeout=5))
    bad_schema = ask()
    bad_schema.tools[0].parameters_json_schema = "{not json"
    with pytest.raises(errors.InvalidArgument, match="schema is not JSON"):
        await call_with_errors(lambda: scripted.stub.Complete(bad_schema, timeout=5))
    with pytest.raises(errors.InvalidArgument, match="at least one message"):
        await call_with_errors(lambda: scripted.stub.Complete(llm_pb2.CompleteRequest(), timeout=5))
    assert scripted.published.audit_records() == []


async def test_provider_failure_is_unavailable_and_counted(down: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await down.stub.Complete(ask(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "provider is down" in (caught.value.details() or "")
    with pytest.raises(errors.Unavailable):
        await call_with_errors(lambda: _drain(down.stub.CompleteStream(ask(), timeout=5)))
    errors_seen = down.registry.get_sample_value(
        "keel_llm_errors_total", {"provider": "down", "error": "Unavailable"}
    )
    assert errors_seen == 2
    assert down.published.audit_records() == []


async def _drain(stream: AsyncIterator[llm_pb2.CompleteChunk]) -> list[llm_pb2.CompleteChunk]:
    return [chunk async for chunk in stream]


@pytest.mark.parametrize(
    ("text", "parts", "expected"),
    [
        ("", 3, []),
        ("one", 3, ["one"]),
        ("a b c d", 2, ["a b ", "c d"]),
        ("a b c d", 3, ["a ", "b ", "c d"]),
        ("   ", 3, ["   "]),
        ("  lead  and trail ", 3, ["  lead  ", "and ", "trail "]),
    ],
)
def test_split_text_keeps_every_character(text: str, parts: int, expected: list[str]) -> None:
    assert split_text(text, parts) == expected
    assert "".join(split_text(text, parts)) == text
