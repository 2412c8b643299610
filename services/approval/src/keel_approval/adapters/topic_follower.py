"""Read a topic to its current end, then follow it: every replica sees every record.

No consumer group, on purpose: decisions and quorum votes made by one approval replica must
reach the books of all of them, and a group would split the partitions between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from keel_contracts.events import Envelope
from keel_core.bus.connect import start_with_retry
from keel_core.bus.reader import Record, read_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)

Apply = Callable[[Envelope], Awaitable[object]]


class TopicFollower:
    def __init__(self, settings: KafkaSettings, topic: str, client_id: str) -> None:
        self._settings = settings
        self._topic = topic
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
        await start_with_retry(self._consumer.start, self._settings)
        self._started = True
        records, ends = await read_partitions(self._consumer, self._topic)
        for tp, offset in ends.items():  # records past the end were read but not returned
            self._consumer.seek(tp, offset)
        return [e for e in map(self._decode, records) if e is not None]

    def follow(self, apply: Apply) -> None:
        """Hand every later record to ``apply`` in the background. A record ``apply`` fails on
        is logged and skipped: the book is a view, and the record stays on the topic."""
        self._task = asyncio.create_task(self._run(apply), name=f"follow-{self._topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._started:
            await self._consumer.stop()

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
                        log.exception("could not apply %s from %s", envelope.id, self._topic)

    def _decode(self, record: Record) -> Envelope | None:
        if record.value is None:
            return None
        try:
            return Envelope.from_bytes(record.value)
        except ValueError as exc:
            log.warning("skipping undecodable record %s@%d: %s", self._topic, record.offset, exc)
            return None
