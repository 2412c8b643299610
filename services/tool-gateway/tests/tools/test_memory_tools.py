"""memory_store / memory_search through the real gRPC adapter to a fake memory service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_clients import CallOptions, MemoryClient
from keel_contracts.errors import Unavailable
from keel_core.grpc import GrpcServer, insecure_channel
from keel_tool_gateway.adapters.memory import MemoryTools
from keel_tool_gateway.adapters.tools.memory_tools import make_memory_tools
from keel_tool_gateway.domain.call_context import ToolContext, calling
from keel_tool_gateway.domain.registry import Tool, ToolError

SERVICE = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name


class FakeMemory(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self) -> None:
        self.stored: list[memory_pb2.StoreRequest] = []
        self.retrieved: list[memory_pb2.RetrieveRequest] = []

    async def Store(  # noqa: N802 - gRPC's name
        self, request: memory_pb2.StoreRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.StoreResponse:
        self.stored.append(request)
        return memory_pb2.StoreResponse(id=f"m{len(self.stored)}")

    async def Retrieve(  # noqa: N802
        self, request: memory_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.RetrieveResponse:
        self.retrieved.append(request)
        if request.query == "nothing":
            return memory_pb2.RetrieveResponse()
        items = [
            memory_pb2.MemoryItem(
                id=f"m{n}",
                type=memory_pb2.MEMORY_TYPE_SEMANTIC,
                content=stored.content,
                score=1.0 - n / 10,
            )
            for n, stored in enumerate(self.stored, 1)
        ]
        return memory_pb2.RetrieveResponse(items=items)


@pytest.fixture
async def memory() -> AsyncIterator[tuple[FakeMemory, dict[str, Tool[Any]]]]:
    fake = FakeMemory()
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(fake, memory_pb2_grpc.add_MemoryServiceServicer_to_server, SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    channel = insecure_channel(f"127.0.0.1:{server.port}")
    tools = {
        t.name: t
        for t in make_memory_tools(MemoryTools(MemoryClient(channel, CallOptions(timeout_s=2.0))))
    }
    yield fake, tools
    await channel.close()
    await server.stop(0)


async def call(tool: Tool[Any], **args: Any) -> str:
    with calling(ToolContext(session_id="sess-9", traceparent="00-abc-def-01")):
        result = await tool.run(tool.input_model.model_validate(args))  # type: ignore[misc]
    assert isinstance(result, str)
    return result


async def test_store_sends_content_type_metadata_and_the_callers_context(
    memory: tuple[FakeMemory, dict[str, Tool[Any]]],
) -> None:
    fake, tools = memory
    output = await call(
        tools["memory_store"], content="Bob likes tea", type="episodic", metadata={"k": "v"}
    )
    assert output == "stored episodic memory m1"
    [request] = fake.stored
    assert request.content == "Bob likes tea"
    assert request.type == memory_pb2.MEMORY_TYPE_EPISODIC
    assert dict(request.metadata) == {"k": "v"}
    assert request.context.session_id == "sess-9"
    assert request.context.traceparent == "00-abc-def-01"


async def test_search_lists_hits(memory: tuple[FakeMemory, dict[str, Tool[Any]]]) -> None:
    fake, tools = memory
    await call(tools["memory_store"], content="Bob likes tea")
    await call(tools["memory_store"], content="Alice likes coffee")
    output = await call(
        tools["memory_search"], query="drinks", types=["semantic", "semantic"], top_k=3
    )
    assert output == (
        "[1] (semantic, score 0.900, id m1) Bob likes tea\n"
        "[2] (semantic, score 0.800, id m2) Alice likes coffee"
    )
    [request] = fake.retrieved
    assert (request.query, request.top_k, request.token_budget) == ("drinks", 3, 0)
    assert list(request.types) == [memory_pb2.MEMORY_TYPE_SEMANTIC]
    assert request.context.session_id == "sess-9"
    assert await call(tools["memory_search"], query="nothing") == "no memories found"


async def test_unreachable_memory_is_a_tool_error() -> None:
    channel = insecure_channel("127.0.0.1:1")
    tools = {
        t.name: t
        for t in make_memory_tools(MemoryTools(MemoryClient(channel, CallOptions(timeout_s=0.5))))
    }
    try:
        with pytest.raises(ToolError, match="memory service: ") as raised:
            await call(tools["memory_store"], content="x")
        assert isinstance(raised.value.__cause__, Unavailable)
    finally:
        await channel.close()


def test_inputs_are_bounded() -> None:
    tools = {t.name: t for t in make_memory_tools(object())}  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1 character"):
        tools["memory_store"].input_model.model_validate({"content": ""})
    with pytest.raises(ValueError, match="less than or equal to 20"):
        tools["memory_search"].input_model.model_validate({"query": "q", "top_k": 50})
    with pytest.raises(ValueError, match="Input should be 'episodic'"):
        tools["memory_search"].input_model.model_validate({"query": "q", "types": ["x"]})
