"""The agent loop's rate limits as ``build`` wires them: Submit per tenant is refused
RESOURCE_EXHAUSTED with a retry-after; a task on ``keel.tasks`` past its tenant's limit is
delayed and then runs (never refused, never lost)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from keel.llm.v1 import llm_pb2_grpc
from keel.memory.v1 import memory_pb2_grpc
from keel.tool.v1 import tool_pb2_grpc
from keel_agent_loop.app import SERVICE, build
from keel_agent_loop.config import Settings
from keel_clients import AgentClient, open_channel
from keel_clients.testing import FakeLLMGateway, FakeMemoryService, FakeToolGateway, serving
from keel_contracts.chat import ChatMessage, LLMReply, Usage
from keel_contracts.errors import ResourceExhausted
from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_contracts.sessions import TaskRequest
from keel_contracts.tools import ToolOutcome
from keel_contracts.topics import RESULTS, TASKS
from keel_core.ratelimit import Limit, RateLimitSettings
from keel_core.testing import InMemoryBus, InMemoryRuntime

USAGE = Usage(prompt_tokens=1, completion_tokens=1, cost_usd=0.0)


def done() -> LLMReply:
    return LLMReply(message=ChatMessage(role="assistant", content="done"), usage=USAGE, model="m")


@contextlib.asynccontextmanager
async def agent_loop(
    limits: dict[str, Limit], bus: InMemoryBus | None = None, shared: bool = False
) -> AsyncIterator[tuple[InMemoryRuntime, AgentClient]]:
    llm = FakeLLMGateway([done() for _ in range(10)])
    tools = FakeToolGateway({}, lambda call: ToolOutcome(status="ok"))
    memory = FakeMemoryService([])
    async with serving(
        (llm, llm_pb2_grpc.add_LLMGatewayServicer_to_server),
        (tools, tool_pb2_grpc.add_ToolGatewayServicer_to_server),
        (memory, memory_pb2_grpc.add_MemoryServiceServicer_to_server),
    ) as target:
        settings: Any = Settings(
            llm_target=target,
            tool_target=target,
            memory_target=target,
            rate_limits=RateLimitSettings(limits=limits, shared=shared, publish_interval_s=0.05),
        )
        runtime = InMemoryRuntime(SERVICE, settings, bus)
        build(settings, runtime)
        async with runtime.running(), open_channel(runtime.target) as channel:
            yield runtime, AgentClient(channel)


async def test_submit_past_the_tenants_burst_is_refused_with_a_retry_after() -> None:
    async with agent_loop({"submit": Limit(rate=0.01, burst=2)}) as (runtime, agent):
        await agent.submit(TaskRequest(goal="a", tenant="acme"))
        await agent.submit(TaskRequest(goal="b", tenant="acme"))
        with pytest.raises(ResourceExhausted, match=r"retry after (9\d|100) s"):
            await agent.submit(TaskRequest(goal="c", tenant="acme"))
        await agent.submit(TaskRequest(goal="d", tenant="other"))
        await runtime.settle()
    goals = [e.parse(TaskSubmitted).goal for e in runtime.bus.envelopes(TASKS)]
    assert sorted(goals) == ["a", "b", "d"]  # the refused Submit published nothing


async def test_a_task_past_its_tenants_limit_is_delayed_then_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="keel_core.ratelimit.tasks")
    # Slow enough that the second task always finds the bucket empty (s0 takes far less).
    async with agent_loop({"tasks": Limit(rate=0.5, burst=1)}) as (runtime, _):
        for n in range(2):
            task = TaskSubmitted(goal=f"task {n}", tenant="acme", max_iterations=2)
            envelope = Envelope.wrap(task, source="test", session_id=f"s{n}")
            await runtime.producer.publish(TASKS, envelope, key=f"s{n}")
        await runtime.settle()
    completed = [e.session_id for e in runtime.bus.envelopes(RESULTS)
                 if e.type == TaskCompleted.event_type]  # fmt: skip
    assert sorted(completed) == ["s0", "s1"]
    delays = [r.message for r in caplog.records if "delayed" in r.message]
    assert [m.startswith("task s1 of acme delayed") for m in delays] == [True]


async def test_a_second_replica_refuses_what_the_first_let_through() -> None:
    bus = InMemoryBus()
    limits = {"submit": Limit(rate=0.01, burst=2)}
    async with (
        agent_loop(limits, bus, shared=True) as (_, first),
        agent_loop(limits, bus, shared=True) as (second_runtime, second),
    ):
        await first.submit(TaskRequest(goal="a", tenant="acme"))
        await first.submit(TaskRequest(goal="b", tenant="acme"))
        folded = "keel_ratelimit_spend_folded_records_total"
        async with asyncio.timeout(5):
            while not second_runtime.registry.get_sample_value(folded):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        with pytest.raises(ResourceExhausted, match="rate limit of submit 'acme'"):
            await second.submit(TaskRequest(goal="c", tenant="acme"))
