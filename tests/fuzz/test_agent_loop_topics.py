"""The agent loop's real composition root, fed ten thousand generated records on each topic it
reads (``keel.tasks``, ``keel.subtasks``, ``keel.approval.decisions``, ``keel.plans`` and the
broadcast ``keel.control``): every record is handled or dead-lettered with a reason, no handler
fails with anything but a clean rejection, and afterwards the service still runs a task to its
answer and answers its health check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.app import SERVICE, AgentLoopParts, build
from keel_agent_loop.config import Settings
from keel_clients.testing import FakeLLMGateway, FakeMemoryService, FakeToolGateway, serving
from keel_contracts.chat import ChatMessage, LLMReply, Usage
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalVoted,
    Envelope,
    NodeFinished,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
    TaskCancelRequested,
    TaskCompleted,
    TaskSubmitted,
)
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    CONTROL,
    PLANS,
    RESULTS,
    SUBTASKS,
    TASKS,
)
from tests.fuzz.harness import DRAWS_PER_EXAMPLE, FUZZ, FuzzRuntime, feed, still_serving
from tests.fuzz.strategies import record_values

# A failing batch is big; hypothesis warns that printing it is slow, and that warning must not
# hide the failure itself.
pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

# Every session the fuzz starts ends at its first answer: the fuzz is about the records.
DONE = LLMReply(
    message=ChatMessage(role="assistant", content="done"),
    usage=Usage(prompt_tokens=1, completion_tokens=1, cost_usd=0.0),
    model="scripted",
)
TOPICS = {
    TASKS: (TaskSubmitted, TaskCancelRequested),
    SUBTASKS: (TaskSubmitted, TaskCancelRequested),
    APPROVAL_DECISIONS: (ApprovalDecided, ApprovalVoted),
    PLANS: (PlanSubmitted, NodeFinished),
    CONTROL: (TaskCancelRequested,),
}


@dataclass
class Service:
    runtime: FuzzRuntime
    parts: AgentLoopParts


@contextlib.asynccontextmanager
async def agent_loop() -> AsyncIterator[Service]:
    llm = FakeLLMGateway([DONE])
    tools = FakeToolGateway({"default": []})
    memory = FakeMemoryService([])
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (memory, memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        # No wait for a decided session's checkpoint: on the in-memory bus it is there at once
        # or never (a fuzzed decision for an unknown session would hold the consumer 3 s).
        settings = Settings(
            llm_target=target, tool_target=target, memory_target=target, decision_wait_s=0
        )
        runtime = FuzzRuntime(SERVICE, settings)
        parts = build(settings, runtime)
        async with runtime.running():
            yield Service(runtime, parts)


async def still_serves(service: Service) -> None:
    """The consumers still run a task to its answer, a plan to its end, the control follower
    still raises a flag, and the gRPC health check answers."""
    runtime = service.runtime
    assert runtime.pumps_alive()
    task = TaskSubmitted(goal="after the fuzz")
    await runtime.producer.publish(TASKS, Envelope.wrap(task, source="t", session_id="canary"))
    plan = PlanSpec(plan_id="canary-plan", nodes=[PlanNode(id="n", goal="one node")])
    await runtime.producer.publish(
        PLANS, Envelope.wrap(PlanSubmitted(plan=plan), source="t", session_id="canary-plan")
    )
    cancel = TaskCancelRequested(reason="canary")
    await runtime.producer.publish(
        CONTROL, Envelope.wrap(cancel, source="t", session_id="canary-cancel")
    )
    await runtime.settle()
    results = [e for e in runtime.bus.envelopes(RESULTS) if e.session_id == "canary"]
    assert [e.parse(TaskCompleted).answer for e in results] == ["done"]
    finished = [
        e.parse(PlanFinished)
        for e in runtime.bus.envelopes(PLANS)
        if e.type == PlanFinished.event_type and e.session_id == "canary-plan"
    ]
    assert [f.status for f in finished] == ["succeeded"]
    assert service.parts.cancels.requested("canary-cancel")
    assert await still_serving(runtime.target)


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_record_on_a_consumed_topic_is_handled_or_dead_lettered(topic: str) -> None:
    values = record_values(TOPICS[topic])
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        service = runner.run(stack.enter_async_context(agent_loop()))
        try:

            @FUZZ
            @given(st.lists(values, min_size=DRAWS_PER_EXAMPLE, max_size=DRAWS_PER_EXAMPLE))
            def fuzz(draws: list[list[bytes | None]]) -> None:
                batch = [value for draw in draws for value in draw]
                runner.run(feed(service.runtime, topic, batch, follower=topic == CONTROL))

            fuzz()
            runner.run(still_serves(service))
        finally:
            runner.run(stack.aclose())
