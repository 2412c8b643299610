"""Two gateway replicas (the real ``build``) on one in-memory bus share one budget: the
reservations are ordered by the ledger topic, so 12 concurrent calls with room for 5 run
exactly 5, and a replica started later folds the spend back."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_contracts.events import BudgetReserved
from keel_contracts.topics import LLM_BUDGET
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryBus, InMemoryRuntime
from keel_llm_gateway.app import SERVICE, build
from keel_llm_gateway.config import DEMO_SCENARIOS, Settings

QUESTION = "What time is it?"


async def answer_tokens() -> tuple[int, int]:
    """(prompt, completion) tokens the scripted answer to QUESTION costs: with max_tokens set
    to its completion, a reservation is exactly what the call then costs, so settlements
    never make room for a sixth call whatever the interleaving."""
    runtime = InMemoryRuntime(SERVICE, Settings(scenario_file=DEMO_SCENARIOS, cache_enabled=False))
    build(runtime.settings, runtime)  # type: ignore[arg-type]
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        reply = await llm_pb2_grpc.LLMGatewayStub(channel).Complete(request(0, 0), timeout=10)
    return reply.usage.prompt_tokens, reply.usage.completion_tokens


def settings(limit: int) -> Settings:
    return Settings.model_validate(
        {
            "provider": "scripted",
            "scenario_file": DEMO_SCENARIOS,
            "cache_enabled": False,
            "budgets": {"tenant": {"tokens": limit}},
        }
    )


def request(index: int, max_tokens: int) -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=common_pb2.RequestContext(session_id=f"s{index}", agent_id="a", tenant="acme"),
        messages=[common_pb2.ChatMessage(role="user", content=QUESTION)],
        max_tokens=max_tokens,
    )


async def call(target: str, index: int, max_tokens: int) -> grpc.StatusCode:
    async with insecure_channel(target) as channel:
        try:
            stub = llm_pb2_grpc.LLMGatewayStub(channel)
            await stub.Complete(request(index, max_tokens), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_two_replicas_share_one_budget_and_a_new_replica_keeps_the_spend() -> None:
    prompt, completion = await answer_tokens()
    limit = 5 * (prompt + completion)
    bus = InMemoryBus()
    replicas = [InMemoryRuntime(SERVICE, settings(limit), bus) for _ in range(2)]
    parts = [build(r.settings, r) for r in replicas]  # type: ignore[arg-type]
    assert all(p.budgets is not None for p in parts)
    async with contextlib.AsyncExitStack() as stack:
        for runtime in replicas:
            await stack.enter_async_context(runtime.running())
        codes = await asyncio.gather(
            *(call(replicas[i % 2].target, i, completion) for i in range(12))
        )
    assert codes.count(grpc.StatusCode.OK) == 5
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 7
    assert len(bus.envelopes(LLM_BUDGET)) >= 12

    restarted = InMemoryRuntime(SERVICE, settings(limit), bus)
    build(restarted.settings, restarted)  # type: ignore[arg-type]
    async with restarted.running():
        assert await call(restarted.target, 13, completion) == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("shared", [True, False])
async def test_without_limits_or_shared_off_nothing_is_written(shared: bool) -> None:
    base = settings(10**6).model_dump()
    if shared:
        base["budgets"] = {}  # no limit: the fast path
    else:
        base["budget_shared"] = False
    runtime = InMemoryRuntime(SERVICE, Settings.model_validate(base))
    parts = build(runtime.settings, runtime)  # type: ignore[arg-type]
    async with runtime.running():
        assert await call(runtime.target, 1, 1) == grpc.StatusCode.OK
    assert parts.budgets is None
    assert [
        e for e in runtime.bus.envelopes(LLM_BUDGET) if e.type == BudgetReserved.event_type
    ] == []
