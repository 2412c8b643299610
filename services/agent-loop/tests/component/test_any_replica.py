"""Any replica answers (ADR 0013): a process that never ran a session answers Get, replays its
events (resuming after an event id) and cancels it, from ``keel.sessions`` and
``keel.task-events`` over the same bus: the agent loop as ``build`` wires it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.app import SERVICE, build
from keel_agent_loop.config import Settings
from keel_clients import AgentClient, open_channel
from keel_clients.testing import (
    ExecuteCall,
    FakeLLMGateway,
    FakeMemoryService,
    FakeToolGateway,
    serving,
)
from keel_contracts.chat import ChatMessage, LLMReply, ToolCall, ToolSpec, Usage
from keel_contracts.events import Envelope, TaskFailed, TaskSubmitted
from keel_contracts.tools import ToolOutcome
from keel_contracts.topics import RESULTS, TASK_EVENTS, TASKS
from keel_core.testing import InMemoryBus, InMemoryRuntime

SID = "sess-any"
USAGE = Usage(prompt_tokens=1, completion_tokens=1, cost_usd=0.0)
CATALOG = {
    "default": [
        ToolSpec(name=name, description=name, parameters_json_schema='{"type": "object"}')
        for name in ("calculator", "send_email")
    ]
}


def reply(content: str, call: str = "") -> LLMReply:
    calls = (ToolCall(id="c0", name=call, arguments_json="{}"),) if call else ()
    message = ChatMessage(role="assistant", content=content, tool_calls=calls)
    return LLMReply(message=message, usage=USAGE, model="scripted")


def run_tool(execute: ExecuteCall) -> ToolOutcome:
    if execute.call.name == "send_email" and not execute.approval_id:
        return ToolOutcome(status="needs_approval", rule_id="approve-sends")
    return ToolOutcome(status="ok", output="4")


@dataclass
class Replica:
    runtime: InMemoryRuntime
    agent: AgentClient


@contextlib.asynccontextmanager
async def replica(bus: InMemoryBus, script: list[LLMReply]) -> AsyncIterator[Replica]:
    llm = FakeLLMGateway(script)
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (FakeToolGateway(CATALOG, run_tool), tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (FakeMemoryService([]), memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        config = Settings(llm_target=target, tool_target=target, memory_target=target)
        runtime = InMemoryRuntime(SERVICE, config, bus)
        build(config, runtime)
        async with runtime.running(), open_channel(runtime.target) as channel:
            yield Replica(runtime, AgentClient(channel))


async def submit(one: Replica, goal: str) -> None:
    task = TaskSubmitted(goal=goal, max_iterations=4, tenant="acme")
    envelope = Envelope.wrap(task, source="test", session_id=SID)
    await one.runtime.producer.publish(TASKS, envelope, key=SID)
    await one.runtime.settle()


async def test_a_process_that_never_ran_a_session_answers_get_and_replays_its_events() -> None:
    bus = InMemoryBus()
    async with replica(bus, [reply("", "calculator"), reply("2+2 = 4")]) as first:
        await submit(first, "add 2+2")
    published = [e.id for e in bus.envelopes(TASK_EVENTS)]
    assert len(published) > 4

    async with replica(bus, []) as fresh:
        got = await fresh.agent.get(SID)
        assert (got.status, got.answer, got.iterations) == ("completed", "2+2 = 4", 2)
        events = [e async for e in fresh.agent.stream_events(SID)]
        assert [e.event_id for e in events] == published
        assert events[-1].type == "completed"
        later = [e async for e in fresh.agent.stream_events(SID, after_event_id=published[1])]
        assert [e.event_id for e in later] == published[2:]
        assert json.loads(events[-1].detail_json)["answer"] == "2+2 = 4"


async def test_a_process_that_never_ran_a_parked_session_reports_and_cancels_it() -> None:
    bus = InMemoryBus()
    async with replica(bus, [reply("", "send_email")]) as first:
        await submit(first, "mail bob")
    assert bus.envelopes(RESULTS) == []

    async with replica(bus, []) as other:
        assert (await other.agent.get(SID)).status == "running"  # parked for approval
        assert await other.agent.cancel(SID, "enough")
        await other.runtime.settle()
        [result] = bus.parsed(RESULTS, TaskFailed)
        assert result.reason == "cancelled"
        assert (await other.agent.get(SID)).status == "cancelled"
