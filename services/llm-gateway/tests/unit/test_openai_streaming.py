"""The OpenAI-compatible provider streaming from a real HTTP server, credentials kept secret,
and the whole path: gRPC CompleteStream → gateway → provider → SSE upstream."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_clients.call import call_with_errors
from keel_contracts.errors import InvalidArgument, Unavailable
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider
from keel_llm_gateway.adapters.openai_stream import StreamAssembler
from keel_llm_gateway.adapters.tool_names import ToolNames
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    TextDelta,
    ToolSpec,
    Usage,
)
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import MockOpenAIUpstream
from keel_llm_gateway.usecases.completions import Completions
from keel_llm_gateway.usecases.gateway import Gateway

KEY = "sk-live-0123456789abcdef"
ASK = CompletionRequest(
    messages=(ChatMessage(role="user", content="Say hello to the world"),),
    tools=(ToolSpec(name="mcp.files.read", parameters={"type": "object"}),),
)


@pytest.fixture
async def upstream() -> AsyncIterator[MockOpenAIUpstream]:
    mock = MockOpenAIUpstream(reply_text="hello big wide world")
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()


@pytest.fixture
async def provider(upstream: MockOpenAIUpstream) -> AsyncIterator[OpenAICompatProvider]:
    client = OpenAICompatProvider(upstream.base_url, SecretStr(KEY), "gpt-4o-mini", 2.0)
    try:
        yield client
    finally:
        await client.aclose()


async def test_text_streams_token_by_token_with_usage_at_the_end(
    upstream: MockOpenAIUpstream, provider: OpenAICompatProvider
) -> None:
    events = [event async for event in provider.stream(ASK)]
    *deltas, final = events
    assert [d.content for d in deltas if isinstance(d, TextDelta)] == [
        "hello",
        " big",
        " wide",
        " world",
    ]
    assert isinstance(final, Completion)
    assert final.message.content == "hello big wide world"
    assert final.usage == Usage(prompt_tokens=11, completion_tokens=3)
    assert final.finish_reason == "stop"
    again = [event async for event in provider.stream(ASK)]
    assert again[-1] == final
    assert upstream.connections_opened == 1  # the stream's connection was reused
    headers, body = upstream.seen[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert headers["authorization"] == f"Bearer {KEY}"


async def test_tool_call_deltas_are_assembled_and_names_mapped_back(
    upstream: MockOpenAIUpstream, provider: OpenAICompatProvider
) -> None:
    upstream.tool_call = ("mcp_files_read", '{"path": "/etc/motd", "lines": 3}')
    events = [event async for event in provider.stream(ASK)]
    assert events[:-1] == []  # no text
    final = events[-1]
    assert isinstance(final, Completion)
    [call] = final.message.tool_calls
    assert (call.id, call.name) == ("call_1", "mcp.files.read")
    assert json.loads(call.arguments_json) == {"path": "/etc/motd", "lines": 3}
    assert final.finish_reason == "tool_calls"


def test_assembler_handles_several_calls_comments_and_done() -> None:
    assembler = StreamAssembler("m", "openai", ToolNames(()))
    lines = [
        ": keep-alive",
        "",
        'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "b", '
        '"function": {"name": "two", "arguments": "{}"}}]}}]}',
        'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a", '
        '"function": {"name": "one", "arguments": "{\\"x\\""}}]}}]}',
        'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, '
        '"function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}',
        "data: [DONE]",
    ]
    for line in lines:
        assembler.feed_line(line)
    assert assembler.done
    completion = assembler.completion()
    assert [(c.id, c.name, c.arguments_json) for c in completion.message.tool_calls] == [
        ("a", "one", '{"x": 1}'),
        ("b", "two", "{}"),
    ]
    assert completion.usage is None  # left to the gateway's estimate


async def test_stream_errors_are_typed(
    upstream: MockOpenAIUpstream, provider: OpenAICompatProvider
) -> None:
    upstream.status = 503
    with pytest.raises(Unavailable, match="HTTP 503"):
        _ = [event async for event in provider.stream(ASK)]
    upstream.status = 400
    with pytest.raises(InvalidArgument, match="HTTP 400"):
        _ = [event async for event in provider.stream(ASK)]


@pytest.mark.parametrize("streaming", [False, True])
async def test_the_key_never_appears_in_errors_even_when_the_upstream_echoes_it(
    upstream: MockOpenAIUpstream,
    provider: OpenAICompatProvider,
    streaming: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream.status = 401
    upstream.error_message = f"Incorrect API key provided: {KEY}. Find yours at ..."
    caplog.set_level(logging.DEBUG)

    async def call() -> object:
        if streaming:
            return [event async for event in provider.stream(ASK)]
        return await provider.complete(ASK)

    with pytest.raises(InvalidArgument) as caught:
        await call()
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert caught.value.__cause__ is None  # no chained transport error carrying headers
    assert caught.value.__suppress_context__
    assert KEY not in caplog.text


async def test_credentials_in_the_base_url_are_scrubbed_from_transport_errors() -> None:
    client = OpenAICompatProvider(
        "http://user:hunter2pass@127.0.0.1:1/v1", SecretStr(KEY), "m", 0.5
    )
    try:
        with pytest.raises(Unavailable) as caught:
            await client.complete(ASK)
    finally:
        await client.aclose()
    assert "hunter2pass" not in str(caught.value)
    assert KEY not in repr(client.__dict__)
    assert "user:" not in str(caught.value)


async def test_grpc_stream_end_to_end_and_nothing_secret_in_audit_or_metrics(
    upstream: MockOpenAIUpstream, provider: OpenAICompatProvider
) -> None:
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    audit, published = in_memory_audit("llm-gateway")
    audit.start()
    gateway = Gateway.single(provider, {}, observer=metrics)
    servicer = LLMGatewayServicer(Completions(gateway, audit, metrics))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, llm_pb2_grpc.add_LLMGatewayServicer_to_server, "keel.llm.v1.LLMGateway")],
        registry,
    )
    await server.start()
    request = llm_pb2.CompleteRequest(
        context=common_pb2.RequestContext(session_id="s", agent_id="a", tenant="t"),
        messages=[common_pb2.ChatMessage(role="user", content="hi")],
    )
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = llm_pb2_grpc.LLMGatewayStub(channel)
            chunks = [c async for c in stub.CompleteStream(request, timeout=5)]
            upstream.status = 401
            upstream.error_message = f"bad key {KEY}"
            with pytest.raises(InvalidArgument) as caught:
                await call_with_errors(lambda: stub.Complete(request, timeout=5))
    finally:
        await server.stop(0)
        await audit.close()
    assert [c.delta for c in chunks[:-1]] == ["hello", " big", " wide", " world"]
    final = chunks[-1].final
    assert final.message.content == "hello big wide world"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (11, 3)
    assert KEY not in str(caught.value)
    everything = b"".join(record.value or b"" for record in published.sent)
    assert published.audit_records()
    assert KEY.encode() not in everything
    from prometheus_client import generate_latest

    assert KEY.encode() not in generate_latest(registry)
