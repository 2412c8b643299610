"""The agent loop's real composition root on an in-memory runtime: records on the in-memory
bus drive sessions through the real consumer, use cases, loop and gRPC clients (to the
llm-gateway, tool-gateway and memory faked as in-process gRPC servicers), and the
AgentService answers on a real loopback server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_agent_loop.app import SERVICE, build
from keel_agent_loop.config import Settings
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalRequested,
    AuditRecord,
    Envelope,
    EventData,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
)
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    APPROVAL_REQUESTS,
    AUDIT,
    CHECKPOINTS,
    CONTROL,
    RESULTS,
    TASK_EVENTS,
    TASKS,
)
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryRuntime

SID = "sess-1"
TRACE = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
USAGE = common_pb2.Usage(prompt_tokens=10, completion_tokens=3, cost_usd=0.001)


def reply(content: str = "", *calls: tuple[str, dict[str, Any]]) -> llm_pb2.CompleteResponse:
    tool_calls = [
        common_pb2.ToolCall(id=f"c{i}", name=name, arguments_json=json.dumps(args))
        for i, (name, args) in enumerate(calls)
    ]
    message = common_pb2.ChatMessage(role="assistant", content=content, tool_calls=tool_calls)
    return llm_pb2.CompleteResponse(message=message, usage=USAGE, model="scripted")


@dataclass
class ScriptedGateway(llm_pb2_grpc.LLMGatewayServicer):
    """The llm-gateway, answering from a script in order."""

    script: list[llm_pb2.CompleteResponse] = field(default_factory=list)
    requests: list[llm_pb2.CompleteRequest] = field(default_factory=list)

    async def Complete(self, request: Any, context: Any) -> llm_pb2.CompleteResponse:
        self.requests.append(request)
        return self.script.pop(0)


@dataclass
class ToolGateway(tool_pb2_grpc.ToolGatewayServicer):
    """``calculator`` runs at once; ``send_email`` needs a person's approval first."""

    executes: list[tool_pb2.ExecuteRequest] = field(default_factory=list)

    async def ListTools(self, request: Any, context: Any) -> tool_pb2.ListToolsResponse:
        schema = json.dumps({"type": "object"})
        return tool_pb2.ListToolsResponse(
            tools=[
                tool_pb2.ToolDescriptor(name=name, description=name, parameters_json_schema=schema)
                for name in ("calculator", "send_email")
            ]
        )

    async def Execute(self, request: Any, context: Any) -> tool_pb2.ExecuteResponse:
        self.executes.append(request)
        if request.call.name == "send_email" and not request.approval_id:
            return tool_pb2.ExecuteResponse(
                status=tool_pb2.EXECUTE_STATUS_NEEDS_APPROVAL, policy_rule="approve-sends"
            )
        return tool_pb2.ExecuteResponse(status=tool_pb2.EXECUTE_STATUS_OK, output="4")


@dataclass
class Memory(memory_pb2_grpc.MemoryServiceServicer):
    stored: list[memory_pb2.StoreRequest] = field(default_factory=list)

    async def Store(self, request: Any, context: Any) -> memory_pb2.StoreResponse:
        self.stored.append(request)
        return memory_pb2.StoreResponse(id=f"m-{len(self.stored)}")

    async def Retrieve(self, request: Any, context: Any) -> memory_pb2.RetrieveResponse:
        return memory_pb2.RetrieveResponse(items=[memory_pb2.MemoryItem(content="likes sums")])


@dataclass
class Service:
    """The built agent loop, started, and its faked peers."""

    runtime: InMemoryRuntime
    llm: ScriptedGateway
    tools: ToolGateway
    memory: Memory
    stub: agent_pb2_grpc.AgentServiceAsyncStub

    async def publish(self, topic: str, payload: EventData) -> None:
        envelope = Envelope.wrap(payload, source="test", session_id=SID, trace=TRACE)
        await self.runtime.producer.publish(topic, envelope, key=SID)
        await self.runtime.settle()

    def progress(self) -> list[TaskProgress]:
        return [e.parse(TaskProgress) for e in self.runtime.bus.envelopes(TASK_EVENTS)]

    def results(self) -> list[TaskCompleted | TaskFailed]:
        return [
            e.parse(TaskCompleted) if e.type == TaskCompleted.event_type else e.parse(TaskFailed)
            for e in self.runtime.bus.envelopes(RESULTS)
        ]


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    llm, tools, memory = ScriptedGateway(), ToolGateway(), Memory()
    peers = GrpcServer(
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
    await peers.start()
    target = f"127.0.0.1:{peers.port}"
    settings = Settings(llm_target=target, tool_target=target, memory_target=target)
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    try:
        async with runtime.running(), insecure_channel(runtime.target) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            yield Service(runtime, llm, tools, memory, stub)
    finally:
        await peers.stop(0)


async def test_a_task_on_keel_tasks_runs_to_its_answer(service: Service) -> None:
    service.llm.script = [reply("", ("calculator", {"expression": "2+2"})), reply("2+2 = 4")]

    await service.publish(TASKS, TaskSubmitted(goal="add 2+2", agent_id="bot", max_iterations=4))

    assert service.results() == [
        TaskCompleted(
            answer="2+2 = 4", iterations=2, prompt_tokens=20, completion_tokens=6, cost_usd=0.002
        )
    ]
    kinds = [p.kind for p in service.progress() if p.kind != "state"]
    assert kinds == ["started", "thought", "tool_call", "tool_result", "thought", "completed"]
    [tool_result] = [p for p in service.progress() if p.kind == "tool_result"]
    assert (tool_result.detail["status"], tool_result.detail["output"]) == ("ok", "4")
    # The real clients carried the session to the peers: memory in the prompt, the tool key.
    assert "likes sums" in service.llm.requests[0].messages[1].content
    assert [e.idempotency_key for e in service.tools.executes] == [f"{SID}:1:0"]
    [episode] = service.memory.stored
    assert episode.type == memory_pb2.MEMORY_TYPE_EPISODIC
    assert episode.metadata["session_id"] == SID
    got = await service.stub.Get(agent_pb2.GetRequest(session_id=SID), timeout=5)
    assert got.status == agent_pb2.SESSION_STATUS_COMPLETED
    assert (got.answer, got.iterations) == ("2+2 = 4", 2)
    # Finished: the checkpoint is tombstoned, the audit trail and the metrics say so.
    assert service.runtime.bus.records(CHECKPOINTS)[-1].value is None
    actions = [r.action for r in service.runtime.bus.parsed(AUDIT, AuditRecord)]
    assert actions == ["task.started", "task.completed"]
    sessions = service.runtime.registry.get_sample_value(
        "keel_agent_sessions_total", {"outcome": "completed", "reason": ""}
    )
    assert sessions == 1.0


async def test_a_parked_session_resumes_on_the_decision(service: Service) -> None:
    service.llm.script = [reply("", ("send_email", {"to": "bob"})), reply("sent")]
    await service.publish(TASKS, TaskSubmitted(goal="mail bob"))
    [request] = service.runtime.bus.parsed(APPROVAL_REQUESTS, ApprovalRequested)
    assert service.results() == []

    decision = ApprovalDecided(approval_id=request.approval_id, outcome="approved", reviewer="ann")
    await service.publish(APPROVAL_DECISIONS, decision)

    assert service.results() == [
        TaskCompleted(
            answer="sent", iterations=2, prompt_tokens=20, completion_tokens=6, cost_usd=0.002
        )
    ]
    assert [e.approval_id for e in service.tools.executes] == ["", request.approval_id]


async def test_cancel_ends_a_parked_session(service: Service) -> None:
    service.llm.script = [reply("", ("send_email", {"to": "bob"}))]
    await service.publish(TASKS, TaskSubmitted(goal="mail bob"))
    parked = await service.stub.Get(agent_pb2.GetRequest(session_id=SID), timeout=5)
    assert parked.status == agent_pb2.SESSION_STATUS_RUNNING

    cancelled = await service.stub.Cancel(
        agent_pb2.CancelRequest(session_id=SID, reason="changed my mind"), timeout=5
    )
    await service.runtime.settle()

    assert cancelled.accepted
    assert service.results() == [
        TaskFailed(reason="cancelled", error="cancelled: changed my mind", iterations=1)
    ]
    [broadcast] = service.runtime.bus.parsed(CONTROL, TaskCancelRequested)
    assert broadcast.requested_by == "AgentService.Cancel"
    got = await service.stub.Get(agent_pb2.GetRequest(session_id=SID), timeout=5)
    assert got.status == agent_pb2.SESSION_STATUS_CANCELLED


async def test_a_cancel_heard_on_keel_control_stops_the_session(service: Service) -> None:
    # Only on the broadcast topic: the control follower must raise the flag for the task.
    await service.publish(CONTROL, TaskCancelRequested(reason="stop", requested_by="ops"))
    await service.publish(TASKS, TaskSubmitted(goal="add 2+2"))

    assert service.llm.requests == []
    assert service.results() == [
        TaskFailed(reason="cancelled", error="cancelled: stop", iterations=0)
    ]
