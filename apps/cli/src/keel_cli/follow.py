"""Follow one session's progress and result on Kafka, without joining a consumer group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_contracts.events import Envelope
from keel_contracts.topics import RESULTS, TASK_EVENTS
from keel_core.bus.connect import start_with_retry
from keel_core.bus.reader import topic_partitions
from keel_core.settings import KafkaSettings

Start = Literal["beginning", "end"]


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` (see ``keel_core.bus.reader.topic_partitions``)."""
    return [tp for topic in topics for tp in await topic_partitions(consumer, topic, attempts=1)]


class SessionFollower:
    """Reads ``keel.task-events`` and ``keel.results``; open it *before* submitting a task with
    ``start="end"`` so nothing is missed, or with ``start="beginning"`` to replay a session."""

    def __init__(self, settings: KafkaSettings, start: Start = "end") -> None:
        self._settings = settings
        self._start = start
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=f"{settings.client_id_prefix}-cli",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def __aenter__(self) -> SessionFollower:
        await start_with_retry(self._consumer.start, self._settings)
        partitions = await partitions_of(self._consumer, [TASK_EVENTS, RESULTS])
        if not partitions:
            await self._consumer.stop()
            raise RuntimeError(f"topics {TASK_EVENTS} and {RESULTS} do not exist yet")
        self._consumer.assign(partitions)
        if self._start == "end":
            await self._consumer.seek_to_end(*partitions)
            # Resolve positions now, so records produced after this point are not skipped.
            for tp in partitions:
                await self._consumer.position(tp)
        else:
            await self._consumer.seek_to_beginning(*partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[tuple[str, Envelope]]:
        """One fetch: decodable envelopes with their topic, progress before results."""
        batches = await self._consumer.getmany(timeout_ms=200)
        found: list[tuple[str, Envelope]] = []
        for records in batches.values():
            for record in records:
                try:
                    found.append((record.topic, Envelope.from_bytes(record.value or b"")))
                except ValueError:
                    continue
        return sorted(found, key=lambda pair: pair[0] == RESULTS)

    async def stream(self) -> AsyncIterator[tuple[str, Envelope]]:
        """Every decodable envelope on both topics, with the topic it came from."""
        while True:
            for pair in await self.poll():
                yield pair

    async def events(self, session_id: str) -> AsyncIterator[Envelope]:
        """Yield the session's envelopes in order, its result last.

        The agent loop flushes a session's progress before publishing its result, but the two
        topics are fetched independently: after the result, poll until no more progress of
        the session arrives, then yield the result.
        """
        result: Envelope | None = None
        while True:
            mine = [(t, e) for t, e in await self.poll() if e.session_id == session_id]
            for topic, envelope in mine:
                if topic == RESULTS:
                    result = envelope
                else:
                    yield envelope
            if result is not None and all(topic == RESULTS for topic, _ in mine):
                yield result
                return
