"""A consumer loop that never loses a message and never crashes on one.

Records are handled as they arrive: one key's records in order, different keys concurrently
(up to ``max_in_flight``), so a long handler (an agent session) never holds up other keys.
Each commit names the next record to read and, in its metadata, the records below it still
in flight (``offsets.PartitionProgress``): after a crash or a rebalance the new owner reads
from the oldest of those and hands only those to its handler again — a long handler (a session
running for hours) no longer makes every later record of its partition be redelivered.
At-least-once; handlers must be idempotent. Commits happen after every poll (at least every
~0.2 s, idle or not). When partitions are taken away in a rebalance, their in-flight handlers
are cancelled: the new owner gets those records again (and, for sessions, resumes from the
latest checkpoint). A record that cannot be decoded or handled goes to ``<topic>.dlq``
with its original bytes and the reason in headers, and the loop moves on.

A DLQ write that fails is retried with backoff; if it still fails, the loop stops (``run``
raises ``DeadLetterFailed``, and the runtime's supervisor stops the service) without handling
later records of that key or committing past the record, so a restart reads it again. Nothing
is skipped, and no key's lane or partition's commit point is left stuck behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from keel_contracts.errors import ConfigError, Unavailable
from keel_contracts.events.envelope import Envelope
from keel_contracts.topics import dlq_of
from keel_core.bus.connect import client_options, start_with_retry
from keel_core.bus.deadletter import DeadLetterFailed, headers_for
from keel_core.bus.metrics import BusMetrics
from keel_core.bus.offsets import PartitionProgress, decode_pending
from keel_core.bus.producer import Publisher
from keel_core.logging import session_id_var, trace_id_var
from keel_core.settings import KafkaSettings
from keel_core.tracing import start_span, trace_id_of

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
Lane = tuple[str, bytes | None]


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be handled: it goes to the DLQ."""


class EventConsumer:
    """Consume ``topics`` as ``group_id`` and call ``handler`` with each decoded envelope.

    Transient failures (``Unavailable``) are retried ``retries`` times with backoff; anything
    else, or a message still failing after the retries, is dead-lettered. A DLQ write is tried
    ``1 + dlq_retries`` times, ``dlq_backoff_s`` apart and doubling, before the loop stops.
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
        max_in_flight: int = 256,
        session_timeout_ms: int = 6_000,
        dlq_retries: int = 4,
        dlq_backoff_s: float = 0.2,
    ) -> None:
        self._settings = settings
        self.topics = topics
        self._group_id = group_id
        self._handler = handler
        self._dlq = dlq_producer
        self._metrics = metrics
        self._retries = retries
        self._max_in_flight = max_in_flight
        self._dlq_retries = dlq_retries
        self._dlq_backoff_s = dlq_backoff_s
        self._stopping = asyncio.Event()
        # Why the loop stopped by itself (a record that could be neither handled nor
        # dead-lettered): raised by run() so the service stops and the record is redelivered.
        self._failure: BaseException | None = None
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._lanes: dict[Lane, asyncio.Task[None]] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._slot = asyncio.Event()
        self._assigned = asyncio.Event()
        self._committed: dict[TopicPartition, tuple[int, str]] = {}
        # Partitions whose previous commit could not be read: never committed by this process
        # (a commit would drop the records it listed in flight); the loop stops.
        self._frozen: set[TopicPartition] = set()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            **client_options(settings),
            client_id=f"{settings.client_id_prefix}-{group_id}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 6, 100),
            max_poll_interval_ms=600_000,
            # Range assignment gives one consumer the same partition number of every topic it
            # reads: records keyed by one session id on several topics (tasks, approval
            # decisions) reach the same process.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    async def start(self) -> None:
        try:
            await start_with_retry(self._consumer.start, self._settings)
        except ConfigError:
            await self._consumer.stop()
            raise
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))

    async def wait_assigned(self, timeout_s: float = 30.0) -> None:
        """Block until the group has given this consumer partitions (useful in tests)."""
        await asyncio.wait_for(self._assigned.wait(), timeout_s)

    async def run(self) -> None:
        """Poll and dispatch until ``stop()``; then let in-flight handlers finish and commit.
        Raises ``DeadLetterFailed`` (or the error that stopped it) when a record could be
        neither handled nor dead-lettered: nothing at or after it was committed."""
        while not self._stopping.is_set():
            if self._in_flight() >= self._max_in_flight:
                self._slot.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot.wait(), 0.2)
                await self._commit()
                continue
            batches = await self._consumer.getmany(timeout_ms=100, max_records=100)
            for tp, records in batches.items():
                for record in records:
                    self._dispatch(tp, record)
            await self._commit()
        if self._failure is not None:
            raise self._failure

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self, grace_s: float = 30.0) -> None:
        """Finish what is in flight (cancelling it after ``grace_s``), commit, leave the group."""
        pending = [t for tasks in self._tasks.values() for t in tasks]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        with contextlib.suppress(Exception):
            await self._commit()
        await self._consumer.stop()

    def _in_flight(self) -> int:
        return sum(p.busy for p in self._progress.values())

    def _dispatch(self, tp: TopicPartition, record: Record) -> None:
        if not self._progress.setdefault(tp, PartitionProgress()).admit(record.offset):
            return  # handled by a previous owner, read again only to reach one it had not
        lane: Lane = (record.topic, record.key)
        previous = self._lanes.get(lane)
        task = asyncio.create_task(self._after(previous, tp, record))
        self._lanes[lane] = task
        self._tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(lambda t: self._forget(lane, tp, t))

    async def _after(
        self, previous: asyncio.Task[None] | None, tp: TopicPartition, record: Record
    ) -> None:
        if previous is not None:
            # Waits without taking on the previous record's fate (cancelled in a rebalance, or
            # failed): this record's own handling decides what happens to it.
            await asyncio.wait([previous])
        if self._failure is not None:
            return  # stopping: neither handled nor finished, so never committed past
        try:
            await self._handle_one(record)
        except Exception as exc:
            # Not handled and not dead-lettered: left unfinished (the commit stops before it)
            # and the loop stops, so a restart reads it again instead of the lane stalling.
            log.error(
                "stopping the consumer of %s: %s[%d]@%d could not be handled or dead-lettered",
                self._group_id,
                record.topic,
                record.partition,
                record.offset,
                exc_info=exc,
            )
            if self._failure is None:
                self._failure = exc
            self._stopping.set()
            self._slot.set()
            return
        progress = self._progress.get(tp)
        if progress is not None:
            progress.finished(record.offset)
        self._slot.set()

    def _forget(self, lane: Lane, tp: TopicPartition, task: asyncio.Task[None]) -> None:
        if self._lanes.get(lane) is task:
            del self._lanes[lane]
        self._tasks.get(tp, set()).discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consumer task failed", exc_info=task.exception())

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets: dict[TopicPartition, tuple[int, str]] = {}
        for tp, progress in self._progress.items():
            if (only is not None and tp not in only) or tp in self._frozen:
                continue
            point = progress.commit_point()
            if point is not None and self._committed.get(tp) != point:
                offsets[tp] = point
        if offsets:
            await self._consumer.commit(offsets)
            self._committed.update(offsets)
            self._record_lag(offsets)

    async def _assigned_partitions(self, assigned: set[TopicPartition]) -> None:
        """Pick up where the previous owner's commit left off: read again from the oldest
        record it listed in flight (``_dispatch`` skips the ones it had handled)."""
        try:
            committed = await self._consumer._coordinator.fetch_committed_offsets(list(assigned))
        except Exception as exc:
            # Reading from the bare offset would skip the records listed in flight: stop.
            log.error("stopping the consumer of %s: cannot read its commits", self._group_id)
            self._frozen |= assigned
            if self._failure is None:
                self._failure = exc
            self._stopping.set()
            return
        for tp in assigned:
            meta = committed.get(tp)
            if meta is None or meta.offset < 0:
                continue
            pending = decode_pending(meta.metadata)
            progress = PartitionProgress.resumed(meta.offset, pending)
            self._progress[tp] = progress
            self._committed[tp] = (meta.offset, meta.metadata or "")
            resume_from = progress.resume_from
            if resume_from is not None:
                log.info(
                    "%s[%d]: reading again %d record(s) in flight at the last commit (from %d, "
                    "committed %d)",
                    tp.topic,
                    tp.partition,
                    len(pending),
                    resume_from,
                    meta.offset,
                )
                self._consumer.seek(tp, resume_from)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: commit what is finished, cancel what is not."""
        with contextlib.suppress(Exception):
            await self._commit(only=revoked)
        cancelled = [t for tp in revoked for t in self._tasks.pop(tp, set())]
        for task in cancelled:
            task.cancel()
        if cancelled:
            log.info("rebalance: handing back %d in-flight record(s)", len(cancelled))
            await asyncio.wait(cancelled)
        for tp in revoked:
            self._progress.pop(tp, None)
            self._committed.pop(tp, None)
            self._frozen.discard(tp)

    async def _handle_one(self, record: Record) -> None:
        started = time.perf_counter()
        try:
            envelope = Envelope.from_bytes(record.value or b"")
        except (ValidationError, ValueError) as exc:
            outcome = "dead_lettered"
            await self._dead_letter(record, f"undecodable envelope: {_short(exc)}", exc)
        else:
            # Every log line of this handler carries the session and trace (its own task, so
            # its own context).
            session_id_var.set(envelope.session_id)
            trace_id_var.set(trace_id_of(envelope.trace))
            with start_span(
                f"process {record.topic}",
                kind=SpanKind.CONSUMER,
                parent=envelope.trace,
                attributes=functools.partial(self._span_attributes, record, envelope),
            ) as span:
                outcome = await self._call_handler(record, envelope)
                span.set_attribute("keel.outcome", outcome)
        if self._metrics:
            self._metrics.consumed.labels(record.topic, outcome).inc()
            self._metrics.handle_seconds.labels(record.topic).observe(time.perf_counter() - started)

    def _span_attributes(self, record: Record, envelope: Envelope) -> dict[str, str | int]:
        # OpenTelemetry messaging conventions, plus what a Keel reader looks for first.
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self._group_id,
            "messaging.message.id": envelope.id,
            "keel.event.type": envelope.type,
            "keel.session.id": envelope.session_id,
        }

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
        """Send the record to its DLQ, retrying with backoff; ``DeadLetterFailed`` when it
        never lands."""
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = headers_for(record, reason, exc, self._group_id)
        delay = self._dlq_backoff_s
        for attempt in range(self._dlq_retries + 1):
            try:
                await self._dlq.send_raw(dlq_of(record.topic), record.value, record.key, headers)
                break
            except Exception as failed:
                if attempt == self._dlq_retries:
                    raise DeadLetterFailed(
                        f"{record.topic}[{record.partition}]@{record.offset} could not be "
                        f"dead-lettered after {attempt + 1} attempts: {failed!r}"
                    ) from failed
                log.warning("DLQ write failed (%r); retrying in %.1fs", failed, delay)
                await asyncio.sleep(delay)
                delay *= 2
        if self._metrics:
            self._metrics.dead_lettered.labels(record.topic).inc()

    def _record_lag(self, committed: dict[TopicPartition, tuple[int, str]]) -> None:
        if not self._metrics:
            return
        for tp, (offset, _pending) in committed.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - offset, 0)
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._consumer._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            await self._consumer._assigned_partitions(set(assigned))
            self._consumer._assigned.set()


def _short(exc: BaseException, limit: int = 500) -> str:
    return str(exc).replace("\n", " ")[:limit]
