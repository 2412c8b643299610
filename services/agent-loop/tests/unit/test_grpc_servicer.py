"""AgentService over a real in-process gRPC server, with the task handler standing in for the
Kafka consumer (what Submit publishes is fed to it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.domain import AgentLoop, LoopConfig, SessionStore, ToolOutcome
from keel_agent_loop.handlers.grpc_servicer import AgentServicer
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.testing import FakeMemory, FakeTools, ScriptedLLM, answer, call_tools
from keel_agent_loop.usecases import FrontDoor, SessionRunner
from keel_contracts.errors import NotFound
from keel_contracts.events import TaskSubmitted
from keel_contracts.topics import TASKS
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit

FULL_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


@dataclass
class Stack:
    stub: agent_pb2_grpc.AgentServiceAsyncStub
    store: SessionStore
    published: InMemoryPublisher
    llm: ScriptedLLM
    handler: TaskHandler


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    store = SessionStore()
    published = InMemoryPublisher()
    llm = ScriptedLLM([])
    audit, _ = in_memory_audit("agent-loop")
    audit.start()
    metrics = AgentMetrics(CollectorRegistry())
    tools = FakeTools({"calculator": ToolOutcome(status="ok", output="4")})
    loop = AgentLoop(llm, tools, FakeMemory(), store, LoopConfig("sys"), observer=metrics)
    handler = TaskHandler(SessionRunner(loop, store, published, audit, metrics))
    servicer = AgentServicer(FrontDoor(store, published), default_max_iterations=5)
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, agent_pb2_grpc.add_AgentServiceServicer_to_server, FULL_NAME)],
        CollectorRegistry(),
    )
    await server.start()
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Stack(agent_pb2_grpc.AgentServiceStub(channel), store, published, llm, handler)
    await server.stop(0)
    await audit.close()


async def test_submit_publishes_a_task_submitted_envelope(stack: Stack) -> None:
    response = await stack.stub.Submit(
        agent_pb2.SubmitRequest(goal="add 2+2", agent_profile="math", metadata={"k": "v"}),
        timeout=5,
    )
    assert len(response.session_id) == 32
    [envelope] = stack.published.envelopes(TASKS)
    assert envelope.type == "keel.task.submitted"
    assert envelope.source == "agent-loop"
    assert envelope.session_id == response.session_id
    assert envelope.trace.startswith("00-")
    assert stack.published.sent[0].key == response.session_id.encode()
    task = envelope.parse(TaskSubmitted)
    assert task == TaskSubmitted(
        goal="add 2+2", agent_profile="math", max_iterations=5, metadata={"k": "v"}
    )
    got = await stack.stub.Get(agent_pb2.GetRequest(session_id=response.session_id), timeout=5)
    assert got.status == agent_pb2.SESSION_STATUS_PENDING


async def test_submit_with_a_chosen_id_is_idempotent(stack: Stack) -> None:
    for _ in range(2):
        response = await stack.stub.Submit(
            agent_pb2.SubmitRequest(goal="g", session_id="my-session.1", max_iterations=3),
            timeout=5,
        )
        assert response.session_id == "my-session.1"
    [envelope] = stack.published.envelopes(TASKS)
    assert envelope.parse(TaskSubmitted).max_iterations == 3


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (agent_pb2.SubmitRequest(goal="  "), "goal must not be empty"),
        (agent_pb2.SubmitRequest(goal="g", session_id="a:b"), "session_id"),
        (agent_pb2.SubmitRequest(goal="g", max_iterations=-1), "max_iterations"),
        (agent_pb2.SubmitRequest(goal="g", max_iterations=1000), "max_iterations"),
    ],
)
async def test_submit_rejects_bad_requests(
    stack: Stack, request_: agent_pb2.SubmitRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Submit(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    assert stack.published.sent == []


async def test_get_stream_and_cancel_of_an_unknown_session_are_not_found(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Get(agent_pb2.GetRequest(session_id="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as stream_err:
        async for _ in stack.stub.StreamEvents(
            agent_pb2.StreamEventsRequest(session_id="nope"), timeout=5
        ):
            pass
    assert stream_err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await stack.stub.Cancel(agent_pb2.CancelRequest(session_id="x"), timeout=5)
    assert cancel.value.code() == grpc.StatusCode.NOT_FOUND


async def test_submit_run_stream_and_get(stack: Stack) -> None:
    stack.llm.extend(call_tools(("calculator", {"e": "2+2"})), answer("4"))
    submitted = await stack.stub.Submit(agent_pb2.SubmitRequest(goal="add 2+2"), timeout=5)
    sid = submitted.session_id

    live: list[agent_pb2.TaskEvent] = []

    async def watch() -> None:
        async for event in stack.stub.StreamEvents(
            agent_pb2.StreamEventsRequest(session_id=sid), timeout=5
        ):
            live.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)  # the stream is open before the session starts
    [envelope] = stack.published.envelopes(TASKS)
    await stack.handler(envelope)
    await asyncio.wait_for(watcher, 5)

    states = [json.loads(e.detail_json)["to"] for e in live if e.type == "state"]
    assert states == [
        "planning",
        "executing_tool",
        "processing_result",
        "planning",
        "completed",
    ]
    live = [e for e in live if e.type != "state"]
    kinds = [e.type for e in live]
    assert kinds == ["started", "thought", "tool_call", "tool_result", "thought", "completed"]
    assert all(e.session_id == sid for e in live)
    assert [e.iteration for e in live] == [0, 1, 1, 1, 2, 2]
    assert json.loads(live[2].detail_json)["idempotency_key"] == f"{sid}:1:0"
    assert live[0].time

    got = await stack.stub.Get(agent_pb2.GetRequest(session_id=sid), timeout=5)
    assert got.status == agent_pb2.SESSION_STATUS_COMPLETED
    assert (got.answer, got.iterations, got.error) == ("4", 2, "")

    replay = [
        e.type
        async for e in stack.stub.StreamEvents(
            agent_pb2.StreamEventsRequest(session_id=sid), timeout=5
        )
        if e.type != "state"
    ]
    assert replay == kinds


async def test_the_front_door_shows_a_session_only_to_its_own_tenant() -> None:
    """A confined caller (a token's tenant) is told another tenant's session does not exist;
    a caller that may see every tenant (None: a service, an operator) sees it."""
    store = SessionStore()
    door = FrontDoor(store, InMemoryPublisher())
    await door.submit("s-acme", TaskSubmitted(goal="What is 2 + 2?", tenant="acme"))
    assert door.get("s-acme", "acme").session_id == "s-acme"
    assert door.get("s-acme", None).tenant == "acme"
    with pytest.raises(NotFound):
        door.get("s-acme", "other")
    with pytest.raises(NotFound):
        door.watch("s-acme", "other")
    with pytest.raises(NotFound):
        await door.cancel("s-acme", "not yours", "other")
    assert await door.cancel("s-acme", "mine", "acme") is True
