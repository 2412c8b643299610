"""LLM budgets hold across gateway replicas and restarts (issue 15, item 3; ADR 0015).

Two llm-gateway replicas run as real processes on the real broker, sharing one tenant budget
with room for exactly 5 calls: 12 concurrent calls split across both run exactly 5 (each
replica's own memory would have let 10 through), and after both restart the spend is still
there.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from keel_cli.stack import LocalStack, with_free_ports, with_replicas
from keel_clients import CallOptions, CompletionOptions, LLMClient, open_channel
from keel_contracts.chat import ChatMessage, RequestContext
from keel_contracts.errors import ResourceExhausted
from keel_core import trust
from keel_core.grpc import insecure_channel
from keel_core.settings import KafkaSettings
from keel_core.testing import InMemoryRuntime
from keel_llm_gateway.app import SERVICE, build
from keel_llm_gateway.config import DEMO_SCENARIOS, Settings

pytestmark = pytest.mark.kafka

QUESTION = "What time is it?"
GATEWAYS = ("llm-gateway", "llm-gateway-2")


async def answer_tokens() -> tuple[int, int]:
    """(prompt, completion) tokens the scripted answer costs, from the real ``build`` in
    process: with max_tokens set to its completion a reservation is exactly what the call then
    costs, so settlements never make room for a sixth call, whatever the interleaving."""
    from keel.llm.v1 import llm_pb2, llm_pb2_grpc

    settings = Settings(scenario_file=DEMO_SCENARIOS, cache_enabled=False)
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    request = llm_pb2.CompleteRequest()
    request.messages.add(role="user", content=QUESTION)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        reply = await llm_pb2_grpc.LLMGatewayStub(channel).Complete(request, timeout=10)
    return reply.usage.prompt_tokens, reply.usage.completion_tokens


async def ask(stack: LocalStack, instance: str, tenant: str, index: int, max_tokens: int) -> bool:
    """One Complete; True if it ran, False if the budget refused it."""
    ctx = RequestContext(session_id=f"s{index}", agent_id="budget-test", tenant=tenant)
    async with open_channel(stack.target(instance)) as channel:
        llm = LLMClient(channel, CallOptions(timeout_s=20))
        try:
            await llm.complete(
                ctx,
                [ChatMessage(role="user", content=QUESTION)],
                options=CompletionOptions(max_tokens=max_tokens),
            )
        except ResourceExhausted:
            return False
    return True


async def start_gateways(stack: LocalStack) -> None:
    for name in GATEWAYS:
        stack.start_one(stack.spec(name))
    deadline = time.monotonic() + 90
    for name in GATEWAYS:
        await stack.wait_healthy(stack.spec(name), deadline)


async def test_two_replicas_run_exactly_the_budget_and_a_restart_keeps_the_spend(
    kafka: KafkaSettings,
) -> None:
    prompt, completion = await answer_tokens()
    tenant = f"budget-{uuid.uuid4().hex[:8]}"  # the topic is shared with the session's tests
    limits = {"tenants": {tenant: {"tokens": 5 * (prompt + completion)}}}
    run_dir = Path(tempfile.mkdtemp(prefix="keel-budgets-"))
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_replicas(with_free_ports(), {"llm-gateway": 2}),
        extra_env={
            "KEEL_LLM_GATEWAY_BUDGETS": json.dumps(limits),
            "KEEL_LLM_GATEWAY_CACHE_ENABLED": "false",
        },
    )
    (run_dir / "logs").mkdir(parents=True)
    trust.generate(stack.trust_dir)
    try:
        await start_gateways(stack)
        ran = await asyncio.gather(
            *(ask(stack, GATEWAYS[i % 2], tenant, i, completion) for i in range(12))
        )
        assert ran.count(True) == 5, [stack.log_tail(name) for name in GATEWAYS]
        assert ran.count(False) == 7
        for name in GATEWAYS:
            assert await stack.stop_one(name) == 0
        await start_gateways(stack)
        for name in GATEWAYS:
            assert not await ask(stack, name, tenant, 13, completion)
        # Another tenant (no limit) is served: the refusal is this tenant's spend.
        assert await ask(stack, "llm-gateway-2", f"{tenant}-other", 14, completion)
    finally:
        codes = await stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    assert set(codes.values()) == {0}, codes
