"""Follow a topic without a consumer group: every process sees every record.

One implementation for every reader that must not share a topic's partitions with its
replicas: the approval book (decisions and quorum votes), the agent loop's cancel flags
(``keel.control``), the operator's live views. Either read the topic to its current end first
(``load``) and follow from there, or follow only what is written after ``start_at_end``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope
from keel_core.bus.connect import start_with_retry
from keel_core.bus.reader import Record, read_partitions, topic_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)

Apply = Callable[[Envelope], Awaitable[object]]


class TopicFollower:
    def __init__(self, settings: KafkaSettings, topic: str, client_id: str) -> None:
        self._settings = settings
        self.topic = topic
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
        """Every decodable envelope up to the end the topic has now; following starts there."""
        await self._start()
        records, ends = await read_partitions(self._consumer, self.topic)
        for tp, offset in ends.items():  # records past the end were read but not returned
            self._consumer.seek(tp, offset)
        return [e for e in map(self._decode, records) if e is not None]

    async def start_at_end(self) -> None:
        """Skip what the topic holds: following starts with the next record written. The
        positions are resolved now, so a record written right after this returns is seen."""
        await self._start()
        partitions = await topic_partitions(self._consumer, self.topic)
        if not partitions:
            raise ConfigError(f"topic {self.topic} does not exist")
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)

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

    async def _start(self) -> None:
        try:
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await self._consumer.stop()
            raise
        self._started = True

    async def _run(self, apply: Apply) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    envelope = self._decode(record)
                    if envelope is None:
                        continue
                    try:
                        await apply(envelope)
                    except Exception:
                        log.exception("could not apply %s from %s", envelope.id, self.topic)

    def _decode(self, record: Record) -> Envelope | None:
        if record.value is None:
            return None
        try:
            return Envelope.from_bytes(record.value)
        except ValueError as exc:
            log.warning("skipping undecodable record %s@%d: %s", self.topic, record.offset, exc)
            return None
