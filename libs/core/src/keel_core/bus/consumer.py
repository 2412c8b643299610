"""A consumer loop that never loses a message and never crashes on one.

Each batch is handled with messages of one key in order and different keys concurrently; offsets
are committed only after the whole batch is handled (at-least-once), so handlers must be
idempotent. A message that cannot be decoded or handled goes to ``<topic>.dlq`` with its
original bytes and the reason in headers, and the loop moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from keel_core.bus.connect import start_with_retry
from keel_core.bus.metrics import BusMetrics
from keel_core.bus.producer import Publisher
from keel_core.errors import ConfigError, Unavailable
from keel_core.events.envelope import Envelope
from keel_core.settings import KafkaSettings
from keel_core.topics import dlq_of

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be handled: it goes to the DLQ."""


class EventConsumer:
    """Consume ``topics`` as ``group_id`` and call ``handler`` with each decoded envelope.

    Transient failures (``Unavailable``) are retried ``retries`` times with backoff; anything
    else, or a message still failing after the retries, is dead-lettered.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        topics: list[str],
        group_id: str,
        handler: Handler,
        dlq_producer: Publisher,
        metrics: BusMetrics | None = None,
        retries: int = 3,
        max_batch: int = 256,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._group_id = group_id
        self._handler = handler
        self._dlq = dlq_producer
        self._metrics = metrics
        self._retries = retries
        self._max_batch = max_batch
        self._stopping = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=settings.bootstrap,
            client_id=f"{settings.client_id_prefix}-{group_id}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 10, 100),
            max_poll_interval_ms=600_000,
        )

    async def start(self) -> None:
        try:
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await self._consumer.stop()
            raise

    async def wait_assigned(self, timeout_s: float = 30.0) -> None:
        """Block until the group has given this consumer partitions (useful in tests)."""
        deadline = time.monotonic() + timeout_s
        while not self._consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions assigned to {self._group_id}")
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """Poll, handle, commit, until ``stop()``; the batch in hand is finished first."""
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=self._max_batch)
            if not batches:
                continue
            await self._handle_batches(batches)
            await self._consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batches.items()}
            )
            self._record_lag(batches)

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self._consumer.stop()

    async def _handle_batches(self, batches: dict[TopicPartition, list[Record]]) -> None:
        by_key: dict[tuple[str, bytes | None], list[Record]] = defaultdict(list)
        for tp, records in batches.items():
            for record in records:
                by_key[(tp.topic, record.key)].append(record)
        await asyncio.gather(*(self._handle_in_order(rs) for rs in by_key.values()))

    async def _handle_in_order(self, records: list[Record]) -> None:
        for record in records:
            await self._handle_one(record)

    async def _handle_one(self, record: Record) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            envelope = Envelope.from_bytes(record.value or b"")
        except (ValidationError, ValueError) as exc:
            outcome = "dead_lettered"
            await self._dead_letter(record, f"undecodable envelope: {_short(exc)}", exc)
        else:
            outcome = await self._call_handler(record, envelope)
        if self._metrics:
            self._metrics.consumed.labels(record.topic, outcome).inc()
            self._metrics.handle_seconds.labels(record.topic).observe(time.perf_counter() - started)

    async def _call_handler(self, record: Record, envelope: Envelope) -> str:
        delay = 0.2
        for attempt in range(self._retries + 1):
            try:
                await self._handler(envelope)
                return "ok"
            except Unavailable as exc:
                if attempt == self._retries:
                    await self._dead_letter(record, f"dependency unavailable: {exc}", exc)
                    return "dead_lettered"
                log.warning("retrying %s after %s: %s", envelope.id, type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay *= 2
            except (PoisonMessage, ValidationError, ValueError) as exc:
                await self._dead_letter(record, f"rejected: {_short(exc)}", exc)
                return "dead_lettered"
            except Exception as exc:  # noqa: BLE001 - any handler bug must not stop the loop
                log.exception("handler failed for %s", envelope.id)
                await self._dead_letter(record, f"handler error: {_short(exc)}", exc)
                return "dead_lettered"
        return "dead_lettered"

    async def _dead_letter(self, record: Record, reason: str, exc: BaseException) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = [
            ("keel-dlq-reason", reason.encode()),
            ("keel-dlq-exception", type(exc).__name__.encode()),
            ("keel-dlq-trace", "".join(traceback.format_exception(exc))[-2000:].encode()),
            ("keel-dlq-topic", record.topic.encode()),
            ("keel-dlq-partition", str(record.partition).encode()),
            ("keel-dlq-offset", str(record.offset).encode()),
            ("keel-dlq-group", self._group_id.encode()),
            ("keel-dlq-time", datetime.now(UTC).isoformat().encode()),
            *[(k, v) for k, v in (record.headers or ()) if not k.startswith("keel-dlq-")],
        ]
        await self._dlq.send_raw(dlq_of(record.topic), record.value, record.key, headers)
        if self._metrics:
            self._metrics.dead_lettered.labels(record.topic).inc()

    def _record_lag(self, batches: dict[TopicPartition, list[Record]]) -> None:
        if not self._metrics:
            return
        for tp, records in batches.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - records[-1].offset - 1, 0)
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


def _short(exc: BaseException, limit: int = 500) -> str:
    text: Any = str(exc).replace("\n", " ")
    return str(text)[:limit]
