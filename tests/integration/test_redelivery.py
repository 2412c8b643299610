"""After a kill -9 of the agent loop, only the task records still in flight are handled again:
sessions that finished long before the crash, behind a long session of the same partition,
are not redelivered (and publish nothing new)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from keel_cli.follow import SessionFollower
from keel_cli.tasks import publish_task
from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_contracts.topics import RESULTS, TASKS
from keel_core.bus.connect import client_options
from keel_core.settings import KafkaSettings
from keel_tool_gateway.adapters.tools.count import read_count
from tests.integration.chaos import own_stack, restart

pytestmark = pytest.mark.stack

SHORT = 8
GROUP = "keel-agent-loop"


def partition_of(session_id: str, partitions: int) -> int:
    """Where the producer's default partitioner puts a record keyed by ``session_id``."""
    return int(murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


def ids_in_partition(partition: int, partitions: int, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        candidate = uuid.uuid4().hex
        if partition_of(candidate, partitions) == partition:
            ids.append(candidate)
    return ids


async def committed_past(kafka: KafkaSettings, partition: int, offset: int) -> None:
    """Until the agent loop's commit of ``keel.tasks[partition]`` reaches ``offset`` with one
    record (the long session) left in flight."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **client_options(kafka))
    await admin.start()
    tp = TopicPartition(TASKS, partition)
    try:
        async with asyncio.timeout(60):
            for _ in itertools.count():
                offsets = await admin.list_consumer_group_offsets(GROUP, partitions=[tp])
                meta = offsets.get(tp)
                listed = meta.metadata if meta is not None else ""
                if meta is not None and meta.offset >= offset and listed.count("=") == 1:
                    if "," not in listed:
                        return
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_kill_9_redelivers_the_session_in_flight_not_the_finished_ones() -> None:
    async with own_stack() as (stack, counts, kafka):
        partitions = KafkaSettings().topic_partitions
        long_name = f"long-{uuid.uuid4().hex[:8]}"
        long_id = uuid.uuid4().hex
        short_ids = ids_in_partition(partition_of(long_id, partitions), partitions, SHORT)
        results: dict[str, list[Envelope]] = {}
        async with SessionFollower(kafka, start="end") as follower:
            stream = follower.stream()

            async def until(done: Callable[[], bool]) -> None:
                async with asyncio.timeout(120):
                    while not done():
                        topic, envelope = await anext(stream)
                        if topic == RESULTS:
                            results.setdefault(envelope.session_id, []).append(envelope)

            await publish_task(
                kafka,
                TaskSubmitted(goal=f"count 40 times slowly: {long_name}", max_iterations=44),
                session_id=long_id,
            )
            for i, session_id in enumerate(short_ids):
                goal = f"count 1 times slowly: short{i}-{long_name}"
                await publish_task(kafka, TaskSubmitted(goal=goal), session_id=session_id)
            await until(lambda: all(s in results for s in short_ids))
            assert long_id not in results, "the long session is still in flight"
            # A result is published before its handler returns (audit, memory, end marker):
            # crash once the shorts' handlers are done and committed, the long one running.
            await committed_past(kafka, partition_of(long_id, partitions), len(short_ids) + 1)
            log = stack.log_path("agent-loop")
            before = log.stat().st_size
            stack.kill("agent-loop")
            await restart(stack, "agent-loop")
            await until(lambda: long_id in results)
        after = log.read_bytes()[before:].decode(errors="replace")
        redelivered = [s for s in short_ids if s in after]
        print(f"\nafter kill -9: {len(redelivered)}/{SHORT} finished sessions handled again")
        assert redelivered == [], "finished sessions behind the long one were redelivered"
        assert long_id in after, "the session in flight was handled again"
        assert all(len(results[s]) == 1 for s in short_ids), "no result published again"
        done = results[long_id][0].parse(TaskCompleted)
        assert done.answer == f"counted {long_name} 40 times; the last count was 40"
        assert read_count(counts / f"{long_name}.count") == 40
