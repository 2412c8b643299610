"""A key → latest value view of a compacted topic, kept in memory and in sync.

State that must survive a crash (session checkpoints, the tool ledger) is written to a
compacted topic; every process that needs it reads the whole topic at start and then follows
it, so a value written by any replica is visible to all.

A write of ours reaches the local view only once the broker has acknowledged it: a value a
reader sees is durable, and a failed send leaves the previous value (a phantom seen only by
the writer would be answered from memory and never written, and another replica or a restart
would not see it). Every value in the view carries the offset it was written at, and neither
the follower nor a late acknowledgement ever replaces it with an older record of the key, so
the view never goes back in time. A tombstone (``delete``) removes the key, also once
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_contracts.errors import ConfigError
from keel_contracts.events.envelope import Envelope, EventData
from keel_core.bus.connect import (
    BATCHED_FETCH_MIN_BYTES,
    BATCHED_FETCH_WAIT_MS,
    client_options,
    start_with_retry,
)
from keel_core.bus.producer import Publisher
from keel_core.bus.reader import read_partitions
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)


class Table(Protocol):
    """A key → latest value view of a compacted topic (``keel_core.testing`` has one in
    memory)."""

    def get(self, key: str) -> Envelope | None: ...

    def keys(self) -> list[str]: ...

    async def put(
        self,
        key: str,
        payload: EventData,
        *,
        session_id: str = "",
        trace: str = "",
        wait: bool = True,
    ) -> Envelope: ...

    async def delete(self, key: str) -> None: ...

    async def flush(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class CompactedTable:
    def __init__(
        self, settings: KafkaSettings, topic: str, producer: Publisher, source: str
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._producer = producer
        self._source = source
        self._values: dict[str, Envelope] = {}
        # The offset of what the view holds for a key (a value, or a tombstone of ours): a
        # record older than it (the follower lagging behind our acknowledged write, or our
        # acknowledgement arriving after the follower read a newer record) never replaces it.
        self._offsets: dict[str, int] = {}
        # Writes of ours not yet acknowledged, per key: while one is, the offset of a deleted
        # key is kept (its acknowledgement may still bring an older record).
        self._unacked: dict[str, int] = {}
        self._follower: asyncio.Task[None] | None = None
        # Followers need not see other writers' values at once (a process reads its own writes
        # locally); batching their fetches keeps them from waking on every write, which costs
        # the writers ~2 ms per write on a 2-core machine. Loading uses unbatched fetches.
        self._consumer = self._new_consumer("follow", fetch_min_bytes=BATCHED_FETCH_MIN_BYTES)

    def _new_consumer(self, role: str, fetch_min_bytes: int = 1) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap,
            **client_options(self._settings),
            client_id=f"{self._settings.client_id_prefix}-{self._source}-table-{role}",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_wait_ms=BATCHED_FETCH_WAIT_MS,
        )

    async def start(self) -> None:
        """Load the topic up to its current end, then follow it in the background."""
        loader = self._new_consumer("load")
        try:
            await start_with_retry(loader.start, self._settings)
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await loader.stop()
            await self._consumer.stop()
            raise
        try:
            ends = await self._load(loader)
        finally:
            await loader.stop()
        self._consumer.assign(list(ends))
        for tp, offset in ends.items():
            self._consumer.seek(tp, offset)
        log.info("loaded %d entries from %s", len(self._values), self._topic)
        self._follower = asyncio.create_task(self._follow(), name=f"follow-{self._topic}")

    async def _load(self, loader: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Read every partition from the beginning to the end it had at start."""
        try:
            records, ends = await read_partitions(loader, self._topic)
        except ConfigError:
            await self._consumer.stop()
            raise
        for record in records:
            self._apply(record.key, record.value, record.offset)
        return ends

    async def stop(self) -> None:
        if self._follower:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._consumer.stop()

    def get(self, key: str) -> Envelope | None:
        return self._values.get(key)

    def keys(self) -> list[str]:
        return list(self._values)

    async def put(
        self,
        key: str,
        payload: EventData,
        *,
        session_id: str = "",
        trace: str = "",
        wait: bool = True,
    ) -> Envelope:
        """Write the value; it becomes visible (``get``) once the broker acknowledged it, and a
        failed write leaves the previous value. With ``wait=False`` return once it is queued
        (in order per key) and let ``flush()`` wait for it — for writes a crash may lose
        without harm; until it is acknowledged ``get`` answers the previous value."""
        envelope = Envelope.wrap(
            payload, source=self._source, session_id=session_id or key, trace=trace
        )
        self._unacked[key] = self._unacked.get(key, 0) + 1
        if not wait:
            try:
                acked = await self._producer.enqueue(self._topic, envelope, key=key)
            except BaseException:
                self._release(key)
                raise
            acked.add_done_callback(functools.partial(self._acked, key, envelope))
            return envelope
        try:
            offset = await self._producer.send_raw(
                self._topic, envelope.to_bytes(), key, [("keel-type", envelope.type.encode())]
            )
            self._set(key, envelope, offset)
        finally:
            self._release(key)
        return envelope

    async def flush(self) -> None:
        await self._producer.flush()

    def _acked(self, key: str, envelope: Envelope, acked: asyncio.Future[Any]) -> None:
        if not acked.cancelled() and acked.exception() is None:
            self._set(key, envelope, int(acked.result().offset))
        elif not acked.cancelled():
            log.error("write of %s to %s failed: %s", key, self._topic, acked.exception())
        self._release(key)

    def _release(self, key: str) -> None:
        left = self._unacked.get(key, 1) - 1
        if left > 0:
            self._unacked[key] = left
        else:
            self._unacked.pop(key, None)

    async def delete(self, key: str) -> None:
        """Write a tombstone; the key leaves the view once the broker acknowledged it."""
        self._unacked[key] = self._unacked.get(key, 0) + 1
        try:
            offset = await self._producer.send_raw(self._topic, None, key, [])
            self._set(key, None, offset, ours=True)
        finally:
            self._release(key)

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._apply(record.key, record.value, record.offset)

    def _apply(self, raw_key: bytes | None, value: bytes | None, offset: int) -> None:
        """One record read from the topic (loading or following)."""
        if raw_key is None:
            return
        key = raw_key.decode()
        if value is None:
            self._set(key, None, offset)
            return
        try:
            envelope = Envelope.from_bytes(value)
        except ValueError as exc:
            log.warning("ignoring undecodable entry %s in %s: %s", key, self._topic, exc)
            return
        self._set(key, envelope, offset)

    def _set(self, key: str, envelope: Envelope | None, offset: int, *, ours: bool = False) -> None:
        """Apply what was written at ``offset`` unless the view holds something newer."""
        if offset < self._offsets.get(key, -1):
            return
        if envelope is not None:
            self._values[key] = envelope
            self._offsets[key] = offset
            return
        self._values.pop(key, None)
        if ours or self._unacked.get(key):
            # Our tombstone (the follower may still bring older records of the key), or a
            # write of ours in flight whose acknowledgement may carry an older offset.
            self._offsets[key] = offset
        else:
            # Read in order with nothing of ours in flight: every later record (read, or
            # written by us from now on) is newer, so the deleted key can be forgotten.
            self._offsets.pop(key, None)
