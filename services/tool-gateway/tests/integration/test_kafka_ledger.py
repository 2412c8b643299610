"""The durable ledger on the real broker: a restarted gateway (a new table over the same
compacted topic) answers a finished key from the topic and does not run the tool again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel_contracts.topics import TOOL_RESULTS
from keel_core.bus import EventProducer
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.adapters.tools.count import read_count
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.testing import StaticPolicy

pytestmark = pytest.mark.kafka

CTX = RequestContext(session_id="sess-k")


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "tool-gateway-test")
    await p.start()
    yield p
    await p.stop()


async def open_gateway(
    kafka: KafkaSettings, producer: EventProducer, topic: str, counts: Path
) -> tuple[ExecutionService, CompactedTable]:
    """What app.py wires, minus gRPC: the table on the topic, loaded before the first call."""
    table = CompactedTable(kafka, topic, producer, "tool-gateway")
    await table.start()
    registry = builtin_registry(test_tools_dir=counts)
    return ExecutionService(registry, StaticPolicy("allow"), KafkaLedger(table)), table


async def test_a_restarted_gateway_replays_from_the_topic(
    kafka: KafkaSettings, producer: EventProducer, tmp_path: Path
) -> None:
    session = f"sess-{uuid.uuid4().hex[:8]}"
    name = "restart"
    call = f'{{"name": "{name}", "sleep_ms": 10}}'
    first, table = await open_gateway(kafka, producer, TOOL_RESULTS, tmp_path)
    try:
        ran = await first.execute(CTX, "count", call, f"{session}:0:0")
        other = await first.execute(CTX, "count", call, f"{session}:1:0")
    finally:
        await table.stop()
    assert (ran.output, other.output) == ("1", "2")

    # The restart: a new table loads the topic from the start; nothing is shared in memory.
    second, table = await open_gateway(kafka, producer, TOOL_RESULTS, tmp_path)
    try:
        replay = await second.execute(CTX, "count", call, f"{session}:0:0")
        reused = await second.execute(CTX, "count", '{"name": "elsewhere"}', f"{session}:1:0")
        fresh = await second.execute(CTX, "count", call, f"{session}:2:0")
    finally:
        await table.stop()
    assert (replay.replayed, replay.output, replay.duration_ms) == (True, "1", ran.duration_ms)
    assert reused.error == (
        f"idempotency key '{session}:1:0' was used for a different call; nothing ran"
    )
    assert (fresh.replayed, fresh.output) == (False, "3")
    assert read_count(tmp_path / f"{name}.count") == 3
    assert not (tmp_path / "elsewhere.count").exists()


async def test_another_replica_sees_the_result_on_the_shared_topic(
    kafka: KafkaSettings, producer: EventProducer, tmp_path: Path
) -> None:
    key = f"sess-k:{uuid.uuid4().hex[:8]}:0"
    call = '{"name": "replica"}'
    a, table_a = await open_gateway(kafka, producer, TOOL_RESULTS, tmp_path)
    b, table_b = await open_gateway(kafka, producer, TOOL_RESULTS, tmp_path)
    try:
        assert (await a.execute(CTX, "count", call, key)).output == "1"
        async with asyncio.timeout(10):
            while table_b.get(key) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        replay = await b.execute(CTX, "count", call, key)
    finally:
        await table_a.stop()
        await table_b.stop()
    assert (replay.replayed, replay.output) == (True, "1")
    assert read_count(tmp_path / "replica.count") == 1
