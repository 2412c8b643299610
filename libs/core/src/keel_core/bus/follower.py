"""Follow a topic without a consumer group: every process sees every record.

One implementation for every reader that must not share a topic's partitions with its
replicas: the approval book (decisions and quorum votes), the agent loop's cancel flags
(``keel.control``), the operator's live views of sessions and plans. Either read the topics to
their current end first (``load``) and follow from there, or follow only what is written after
``start_at_end``, or everything from ``start_at_beginning``. Then either hand each record to a
callback in the background (``follow``) or pull batches yourself (``poll``).

A record loaded that its user cannot use (or that could not be decoded) can be sent to its
DLQ (``dead_letter``, ``dead_letter_undecodable``: ``keel_core.bus.deadletter.DeadLettering``)
until following starts; the DLQ producer is made only when one is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope
from keel_contracts.topics import dlq_of
from keel_core.bus.connect import (
    BATCHED_FETCH_MIN_BYTES,
    BATCHED_FETCH_WAIT_MS,
    IDLE_FETCH_WAIT_MS,
    client_options,
    start_with_retry,
)
from keel_core.bus.deadletter import headers_for
from keel_core.bus.producer import EventProducer
from keel_core.bus.reader import Record, read_partitions, topic_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)

Apply = Callable[[Envelope], Awaitable[object]]


class TopicFollower:
    def __init__(
        self,
        settings: KafkaSettings,
        topics: str | Sequence[str],
        client_id: str,
        *,
        batched: bool = False,
    ) -> None:
        """``batched``: the broker answers this follower's fetches once 64 KiB are waiting
        or after 250 ms, instead of at every record: for a reader that need not see others'
        records at once, on a busy topic (each fetch wakes the broker and this process)."""
        self._settings = settings
        self._client_id = client_id
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.topic = ", ".join(self.topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            **client_options(settings),
            client_id=f"{settings.client_id_prefix}-{client_id}",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_min_bytes=BATCHED_FETCH_MIN_BYTES if batched else 1,
            fetch_max_wait_ms=BATCHED_FETCH_WAIT_MS if batched else IDLE_FETCH_WAIT_MS,
        )
        self._task: asyncio.Task[None] | None = None
        self._started = False
        # What the last load() read, kept until following starts so a rejected record can be
        # dead-lettered with its original bytes and origin.
        self._loaded: dict[str, Record] = {}
        self._undecodable: list[Record] = []
        self._dlq: EventProducer | None = None

    async def load(self) -> list[Envelope]:
        """Every decodable envelope up to the end the topics have now (topic by topic, in
        offset order within a partition); following starts there."""
        await self._start()
        records, ends = await read_partitions(self._consumer, self.topics)
        for tp, offset in ends.items():  # records past the end were read but not returned
            self._consumer.seek(tp, offset)
        loaded: list[Envelope] = []
        for record in records:
            envelope = self._decode(record)
            if envelope is None:
                if record.value is not None:
                    self._undecodable.append(record)
                continue
            self._loaded.setdefault(envelope.id, record)
            loaded.append(envelope)
        return loaded

    async def dead_letter(self, envelope: Envelope, reason: str, exc: BaseException) -> None:
        """Send the loaded record ``envelope`` came from to its DLQ (before ``follow``)."""
        record = self._loaded.get(envelope.id)
        if record is None:
            raise LookupError(f"{envelope.id} was not loaded by this follower")
        await self._send_dead_letter(record, reason, exc)

    async def dead_letter_undecodable(self) -> int:
        """Send the records the last load could not decode to their DLQ; how many."""
        sent = 0
        while self._undecodable:
            record = self._undecodable[0]
            await self._send_dead_letter(record, "undecodable envelope", ValueError("undecodable"))
            self._undecodable.pop(0)
            sent += 1
        return sent

    async def _send_dead_letter(self, record: Record, reason: str, exc: BaseException) -> None:
        if self._dlq is None:
            dlq = EventProducer(self._settings, f"{self._client_id}-dlq")
            await dlq.start()
            self._dlq = dlq
        headers = headers_for(record, reason, exc, self._client_id)
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        await self._dlq.send_raw(dlq_of(record.topic), record.value, record.key, headers)

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
        self._forget_loaded()
        self._task = asyncio.create_task(self._run(apply), name=f"follow-{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._started:
            self._started = False
            await self._consumer.stop()
        if self._dlq is not None:
            await self._dlq.stop()
            self._dlq = None
        self._forget_loaded()

    def _forget_loaded(self) -> None:
        self._loaded.clear()
        self._undecodable.clear()

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
