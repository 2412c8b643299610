"""The one producer of a service: acks=all and idempotent, so a retried send is never doubled.

How writes share requests (ADR 0016): aiokafka keeps one produce request in flight per broker
and takes one batch per partition into each request, so whatever is written while a request is
out (other sessions' awaited ledger writes, pipelined checkpoints and events, audit records)
goes out together in the next one. ``linger_ms=0``: nothing waits to be batched when no request
is out, so an awaited write alone pays one round trip, never a linger.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from keel_contracts.errors import ConfigError
from keel_contracts.events.envelope import Envelope
from keel_core.bus.connect import client_options, start_with_retry
from keel_core.bus.metrics import BusMetrics
from keel_core.bus.partitioner import RememberingPartitioner
from keel_core.settings import KafkaSettings

Headers = list[tuple[str, bytes]]

# What one partition's batch may hold. aiokafka's default (16 KiB) is less than one long
# session's checkpoint: a burst to one partition (50 sessions' checkpoints and events, a tool
# gateway's audit records) then went out 16 KiB per round trip, and ``enqueue`` behind a full
# batch waited for it to be sent, as if awaited. A batch holds at most this or one record
# alone, so it stays under the broker's ``message.max.bytes`` (1 MiB) as every record does.
MAX_BATCH_BYTES = 512 * 1024


class Publisher(Protocol):
    """What code that only publishes needs; ``keel_core.testing`` has an in-memory one."""

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None: ...

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        """Send and wait for the acknowledgement; the record's offset."""
        ...

    async def enqueue(
        self, topic: str, envelope: Envelope, key: str | None = None
    ) -> asyncio.Future[Any]:
        """Enqueue in order without waiting; the future resolves on the broker's ack."""
        ...

    async def flush(self) -> None: ...


class EventProducer:
    def __init__(
        self,
        settings: KafkaSettings,
        client_id: str,
        metrics: BusMetrics | None = None,
        *,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._settings = settings
        self._max_batch_bytes = max_batch_bytes
        self._metrics = metrics
        self._client_id = f"{settings.client_id_prefix}-{client_id}"
        self._pending: set[asyncio.Future[Any]] = set()
        self._produced: dict[str, Counter] = {}
        # Made at start: a service whose wiring fails before it starts leaves no client to
        # close (aiokafka warns about every one it finds unclosed).
        self._client: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._client is None:
            raise RuntimeError("the producer has not been started")
        return self._client

    async def start(self) -> None:
        self._client = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap,
            **client_options(self._settings),
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            max_batch_size=self._max_batch_bytes,
            partitioner=RememberingPartitioner(),
        )
        try:
            await start_with_retry(self._client.start, self._settings)
        except ConfigError:
            await self._client.stop()
            raise

    async def stop(self) -> None:
        """Flushes what is buffered before closing."""
        if self._client is not None:
            await self._client.stop()

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        """Send and wait for the broker's acknowledgement. The key defaults to the session id,
        which keeps a session's events in order on one partition."""
        await self.send_raw(
            topic, envelope.to_bytes(), key=key or envelope.session_id, headers=_headers(envelope)
        )

    async def enqueue(
        self, topic: str, envelope: Envelope, key: str | None = None
    ) -> asyncio.Future[Any]:
        """Put the record in the send buffer and return without waiting for the broker.

        Records enqueued one after another keep their order per key; the returned future
        resolves on the acknowledgement, so a caller can pipeline many sends and still know
        each one landed. ``flush()`` waits for every record enqueued so far.
        """
        raw_key = (key or envelope.session_id).encode()
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value=envelope.to_bytes(), key=raw_key, headers=_headers(envelope)
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._count(topic)
        return future

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending))

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        raw_key = key.encode() if isinstance(key, str) else key
        metadata = await self._producer.send_and_wait(
            topic, value=value, key=raw_key, headers=headers
        )
        self._count(topic)
        return int(metadata.offset)

    def _count(self, topic: str) -> None:
        # The labelled child is looked up once per topic (``labels`` hashes and locks each time).
        if self._metrics is None:
            return
        counter = self._produced.get(topic)
        if counter is None:
            counter = self._produced[topic] = self._metrics.produced.labels(topic)
        counter.inc()


def _headers(envelope: Envelope) -> Headers:
    headers: Headers = [("keel-type", envelope.type.encode())]
    if envelope.trace:
        headers.append(("traceparent", envelope.trace.encode()))
    return headers
