"""Follow a topic without a consumer group: every process sees every record.

One implementation for every reader that must not share a topic's partitions with its
replicas: the approval book (decisions and quorum votes), the agent loop's cancel flags
(``keel.control``), the operator's live views of sessions and plans. Either read the topics to
their current end first (``load``) and follow from there, or follow only what is written after
``start_at_end``, or everything from ``start_at_beginning``. Then either hand each record to a
callback in the background (``follow``) or pull batches yourself (``poll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope
from keel_core.bus.connect import start_with_retry
from keel_core.bus.reader import Record, read_partitions, topic_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)

Apply = Callable[[Envelope], Awaitable[object]]


class TopicFollower:
    def __init__(
        self, settings: KafkaSettings, topics: str | Sequence[str], client_id: str
    ) -> None:
        self._settings = settings
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.topic = ", ".join(self.topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=f"{settings.client_id_prefix}-{client_id}",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=250,
        )
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def load(self) -> list[Envelope]:
        """Every decodable envelope up to the end the topics have now (topic by topic, in
        offset order within a partition); following starts there."""
        await self._start()
        records, ends = await read_partitions(self._consumer, self.topics)
        for tp, offset in ends.items():  # records past the end were read but not returned
            self._consumer.seek(tp, offset)
        return [e for e in map(self._decode, records) if e is not None]

    async def start_at_end(self) -> None:
        """Skip what the topics hold: following starts with the next record written. The
        positions are resolved now, so a record written right after this returns is seen."""
        partitions = await self._assign_all()
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)

    async def start_at_beginning(self) -> None:
        """Follow everything the topics hold, then what is written later."""
        partitions = await self._assign_all()
        await self._consumer.seek_to_beginning(*partitions)

    async def poll(self, timeout_ms: int = 200) -> list[tuple[str, Envelope]]:
        """One fetch: the decodable envelopes that arrived, with the topic of each."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        found: list[tuple[str, Envelope]] = []
        for records in batches.values():
            for record in records:
                envelope = self._decode(record)
                if envelope is not None:
                    found.append((record.topic, envelope))
        return found

    def follow(self, apply: Apply) -> None:
        """Hand every later record to ``apply`` in the background. A record ``apply`` fails on
        is logged and skipped: a follower keeps a view, and the record stays on the topic."""
        self._task = asyncio.create_task(self._run(apply), name=f"follow-{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def _assign_all(self) -> list[TopicPartition]:
        await self._start()
        partitions: list[TopicPartition] = []
        for topic in self.topics:
            found = await topic_partitions(self._consumer, topic)
            if not found:
                raise ConfigError(f"topic {topic} does not exist")
            partitions += found
        self._consumer.assign(partitions)
        return partitions

    async def _start(self) -> None:
        try:
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await self._consumer.stop()
            raise
        self._started = True

    async def _run(self, apply: Apply) -> None:
        while True:
            for topic, envelope in await self.poll(timeout_ms=1000):
                try:
                    await apply(envelope)
                except Exception:
                    log.exception("could not apply %s from %s", envelope.id, topic)

    def _decode(self, record: Record) -> Envelope | None:
        if record.value is None:
            return None
        try:
            return Envelope.from_bytes(record.value)
        except ValueError as exc:
            log.warning("skipping undecodable record %s@%d: %s", record.topic, record.offset, exc)
            return None
