"""Bad input on keel.tasks: a dead-letter record with the reason, and the loop keeps going."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from keel_cli.stack import LocalStack
from keel_contracts.events import Envelope, TaskCompleted
from keel_contracts.topics import TASKS, dlq_of
from keel_core.bus import EventProducer
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings
from tests.integration.helpers import run_task

pytestmark = pytest.mark.stack


async def dead_letters_for(kafka: KafkaSettings, key: bytes) -> list[dict[str, bytes]]:
    found: list[dict[str, bytes]] = []
    async with asyncio.timeout(30):
        while not found:
            records = await read_topic(kafka, dlq_of(TASKS), "test-dlq")
            found = [{**dict(r.headers), "value": r.value or b""} for r in records if r.key == key]
            if not found:
                await asyncio.sleep(0.3)
    return found


async def test_malformed_messages_are_dead_lettered_and_the_consumer_keeps_going(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    producer = EventProducer(kafka, "test")
    await producer.start()
    garbage_key, invalid_key = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        await producer.send_raw(TASKS, b"{not json", key=garbage_key, headers=[])
        invalid = Envelope(
            type="keel.task.submitted",
            source="test",
            session_id=invalid_key,
            data={"goal": "", "max_iterations": 0},
        )
        await producer.publish(TASKS, invalid)
    finally:
        await producer.stop()

    (garbage,) = await dead_letters_for(kafka, garbage_key.encode())
    assert garbage["value"] == b"{not json"
    assert garbage["keel-dlq-reason"].startswith(b"undecodable envelope")
    (rejected,) = await dead_letters_for(kafka, invalid_key.encode())
    assert b"goal" in rejected["keel-dlq-reason"]

    _, events = await run_task(kafka, "What is 6 * 7?")
    assert "42" in events[-1].parse(TaskCompleted).answer
