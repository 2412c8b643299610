"""Rate limits shared by two real agent-loop replicas (docs/rate-limits.md, ADR 0012): each
replica publishes what it let through on ``keel.ratelimit.spend`` and debits the other's, so
a tenant's Submit burst holds across both within the documented overshoot, and a replica
refuses a tenant the OTHER replica spent (its own bucket alone would still admit it).
Refusals are RESOURCE_EXHAUSTED with a ``retry-after`` trailer."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import pytest

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_cli.broker import start_broker, stop_broker
from keel_cli.ops_read import read_topic
from keel_cli.stack import LocalStack, ServiceSpec, with_free_ports, with_replicas
from keel_clients import open_channel
from keel_contracts.events import Envelope, RateLimitSpent
from keel_contracts.topics import RATELIMIT_SPEND
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings
from tests.integration.chaos import REPO, admin_settings, broker_credentials, broker_env

pytestmark = pytest.mark.stack

BURST = 3
# Slow enough that nothing refills while the test runs (one token every 100 s): what is
# admitted is what the buckets held.
RATE = 0.01
LIMITS = {"limits": {"submit": {"rate": RATE, "burst": BURST}}, "shared": True}
# ADR 0012: R replicas may pass a key's limit by (R - 1) x (burst + rate x lag) before the
# spend is folded; with R = 2 and this rate, one more burst (rate x lag rounds to nothing).
MOST_ADMITTED = BURST + (2 - 1) * (BURST + 1)


@asynccontextmanager
async def two_agent_loops() -> AsyncIterator[tuple[LocalStack, KafkaSettings]]:
    """A broker and a stack of their own with two agent-loop replicas: the session stack's one
    agent loop must not run these tasks, and its limits are off."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-ratelimit-"))
    env = broker_env(run_dir)
    bootstrap = await asyncio.to_thread(start_broker, REPO, env)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_replicas(with_free_ports(), {"agent-loop": 2}),
        extra_env={"KEEL_AGENT_LOOP_RATE_LIMITS": json.dumps(LIMITS)},
        kafka_credentials=broker_credentials(env),
    )
    kafka = admin_settings(env, bootstrap, connect_timeout_s=30)
    try:
        await ensure_topics(kafka)
        await stack.start()
        yield stack, kafka
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        shutil.rmtree(run_dir, ignore_errors=True)


class Refused(Exception):
    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details())
        self.code = error.code()
        self.retry_after = dict(error.trailing_metadata() or ()).get("retry-after", "")


async def submit(stack: LocalStack, replica: ServiceSpec, tenant: str, n: int) -> str:
    async with open_channel(f"127.0.0.1:{replica.grpc_port}") as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        request = agent_pb2.SubmitRequest(goal=f"Say hello {n}", tenant=tenant)
        try:
            return str((await stub.Submit(request, timeout=10)).session_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            raise Refused(exc) from exc


async def folded(replica: ServiceSpec) -> float:
    """How many of the other replica's spend records this one has debited (its metric)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{replica.metrics_port}/metrics")).text
    for line in text.splitlines():
        if line.startswith("keel_ratelimit_spend_folded_records_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def published_spend(kafka: KafkaSettings, tenant: str) -> tuple[int, float]:
    """The spend records on ``keel.ratelimit.spend`` so far, and the Submit tokens of
    ``tenant`` they carry."""
    records = [
        Envelope.from_bytes(record.value or b"").parse(RateLimitSpent)
        for record in await read_topic(kafka, RATELIMIT_SPEND)
    ]
    tokens = sum(
        s.tokens for r in records for s in r.spends if (s.kind, s.key) == ("submit", tenant)
    )
    return len(records), tokens


async def until_folded(
    kafka: KafkaSettings, replica: ServiceSpec, tenant: str, tokens: float, timeout_s: float = 30
) -> None:
    """Wait until the spend of ``tokens`` of ``tenant`` is published, and ``replica`` (which
    published none of it) has debited every record: a condition polled, not a guessed time."""
    async with asyncio.timeout(timeout_s):
        while True:
            count, published = await published_spend(kafka, tenant)
            if published >= tokens and await folded(replica) >= count:
                return
            await asyncio.sleep(0.2)


async def test_two_replicas_share_a_tenants_submit_burst() -> None:
    async with two_agent_loops() as (stack, kafka):
        first, second = stack.replicas("agent-loop")

        # Spent on the first replica only: exactly its burst is admitted there.
        admitted, refusals = 0, []
        for n in range(BURST + 2):
            try:
                await submit(stack, first, "acme", n)
                admitted += 1
            except Refused as refused:
                refusals.append(refused)
        assert admitted == BURST
        # Once the second replica has folded that spend, it refuses acme too, although it
        # has admitted nothing of acme itself (alone, its bucket would still hold BURST).
        await until_folded(kafka, second, "acme", BURST)
        with pytest.raises(Refused) as on_second:
            await submit(stack, second, "acme", 99)
        refusals.append(on_second.value)

        # Alternating over both replicas as fast as one client goes: the total admitted stays
        # within the burst plus the documented overshoot.
        admitted_alternating = 0
        for n in range(4 * BURST):
            try:
                await submit(stack, (first, second)[n % 2], "globex", n)
                admitted_alternating += 1
            except Refused as refused:
                refusals.append(refused)
        assert BURST <= admitted_alternating <= MOST_ADMITTED

    assert refusals
    for refused in refusals:
        assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(refused.retry_after) >= 1
        assert "rate limit of submit" in str(refused)
