"""A bus in memory: topics as lists of records, with consumers, tables and followers fed from
them the way Kafka feeds the real ones (in order per topic, each reader at its own pace).

For component tests that build a service's real composition root without a broker; anything
that depends on the broker's own behaviour (rebalances, acknowledgements, compaction) is
tested against the real broker instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from keel_contracts.events.envelope import Envelope, EventData
from keel_core.bus.consumer import Handler, PoisonMessage
from keel_core.bus.deadletter import dead_letter_headers
from keel_core.bus.follower import Apply
from keel_core.bus.producer import Headers

log = logging.getLogger(__name__)

# aiokafka's default ``max_request_size``, which ``EventProducer`` keeps: the real producer
# refuses a record whose batch would be larger before sending it (the broker's own
# ``message.max.bytes``, 1 048 588 by default, is a little higher), so the bus refuses it too.
MAX_RECORD_BYTES = 1_048_576

Listener = Callable[["BusRecord"], None]


def check_size(topic: str, value: bytes | None, key: str | bytes | None, headers: Headers) -> None:
    """Refuse what the real producer refuses (``MAX_RECORD_BYTES``), the way it does. Only
    sends through the bus's publisher and tables are checked: a test may still put any record
    on a topic (``InMemoryBus.append``) to see what its readers make of it."""
    raw_key = key.encode() if isinstance(key, str) else key
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(raw_key, value, headers)
    if size > MAX_RECORD_BYTES:
        raise MessageSizeTooLargeError(
            f"a record of {size} bytes on {topic} is over the producer's "
            f"{MAX_RECORD_BYTES}-byte limit"
        )


Deliver = Callable[["BusRecord"], Awaitable[None]]


@dataclass(frozen=True)
class BusRecord:
    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def envelope(self) -> Envelope | None:
        if self.value is None:
            return None
        try:
            return Envelope.from_bytes(self.value)
        except ValueError:
            return None


class SendFailed(ConnectionError):
    """A send the test made fail (``InMemoryBus.fail_next``), as a broker that is away would."""


@dataclass
class InMemoryBus:
    """Every record ever sent, per topic, and who listens to each topic."""

    topics: dict[str, list[BusRecord]] = field(default_factory=dict)
    _listeners: dict[str, list[Listener]] = field(default_factory=dict)
    _failing: dict[str, int] = field(default_factory=dict)

    def fail_next(self, topic: str, times: int = 1) -> None:
        """Make the next ``times`` appends to ``topic`` raise ``SendFailed`` (nothing lands):
        how a test shows what a writer does when the broker does not acknowledge."""
        self._failing[topic] = self._failing.get(topic, 0) + times

    def append(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> BusRecord:
        failing = self._failing.get(topic, 0)
        if failing:
            self._failing[topic] = failing - 1
            raise SendFailed(f"injected send failure on {topic}")
        raw_key = key.encode() if isinstance(key, str) else key
        log_ = self.topics.setdefault(topic, [])
        record = BusRecord(topic, len(log_), raw_key, value, list(headers))
        log_.append(record)
        for listener in list(self._listeners.get(topic, [])):
            listener(record)
        return record

    def listen(self, topic: str, listener: Listener) -> None:
        self._listeners.setdefault(topic, []).append(listener)

    def unlisten(self, topic: str, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.get(topic, []).remove(listener)

    def records(self, topic: str) -> list[BusRecord]:
        return list(self.topics.get(topic, []))

    def envelopes(self, topic: str) -> list[Envelope]:
        return [e for e in (r.envelope() for r in self.records(topic)) if e is not None]

    def parsed(self, topic: str, payload: type[EventData]) -> list[Any]:
        """The payloads of one event type on ``topic``, in order."""
        return [e.parse(payload) for e in self.envelopes(topic) if e.type == payload.event_type]


class BusPublisher:
    """The ``Publisher`` of an in-memory bus: every send is acknowledged at once."""

    def __init__(self, bus: InMemoryBus) -> None:
        self.bus = bus

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        await self.send_raw(topic, envelope.to_bytes(), key or envelope.session_id, [])

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        check_size(topic, value, key, headers)
        return self.bus.append(topic, value, key, headers).offset

    async def enqueue(
        self, topic: str, envelope: Envelope, key: str | None = None
    ) -> asyncio.Future[Any]:
        value, raw_key = envelope.to_bytes(), key or envelope.session_id
        check_size(topic, value, raw_key, [])
        record = self.bus.append(topic, value, raw_key, [])
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(record)
        return done

    async def flush(self) -> None:
        return None


class _Pump:
    """Hands the records of some topics to a coroutine one at a time, in arrival order."""

    def __init__(
        self, bus: InMemoryBus, topics: list[str], deliver: Callable[[BusRecord], Awaitable[None]]
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._deliver = deliver
        self._queue: asyncio.Queue[BusRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    def start(self) -> None:
        for topic in self._topics:
            self._bus.listen(topic, self._enqueue)
        self._task = asyncio.create_task(self._run(), name=f"pump-{','.join(self._topics)}")

    async def stop(self) -> None:
        for topic in self._topics:
            self._bus.unlisten(topic, self._enqueue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _enqueue(self, record: BusRecord) -> None:
        self.idle.clear()
        self._queue.put_nowait(record)

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._deliver(record)
            finally:
                if self._queue.empty():
                    self.idle.set()


class InMemoryConsumer:
    """A consumer group of one: the handler gets every later record of its topics; one that
    fails (``PoisonMessage`` or any error) goes to ``<topic>.dlq`` as the real consumer's do,
    with the same headers."""

    def __init__(
        self, bus: InMemoryBus, topics: list[str], handler: Handler, group_id: str = ""
    ) -> None:
        self._bus = bus
        self._handler = handler
        self._group_id = group_id
        self._pump = _Pump(bus, topics, self._handle)

    @property
    def idle(self) -> asyncio.Event:
        return self._pump.idle

    async def start(self) -> None:
        self._pump.start()

    async def stop(self) -> None:
        await self._pump.stop()

    async def _handle(self, record: BusRecord) -> None:
        envelope = record.envelope()
        try:
            if envelope is None:
                raise PoisonMessage("undecodable record")
            await self._handler(envelope)
        except Exception as exc:
            log.warning("dead-lettering %s@%d: %s", record.topic, record.offset, exc)
            _dead_letter(self._bus, record, str(exc), exc, self._group_id)


class InMemoryFollower:
    """The ``Follower`` of an in-memory bus: a view of every record, with no group. Like the
    real one it can dead-letter a loaded record its user rejects (``DeadLettering``)."""

    def __init__(self, bus: InMemoryBus, topic: str, role: str = "") -> None:
        self._bus = bus
        self.topic = topic
        self._role = role
        self._pump: _Pump | None = None
        self._loaded: dict[str, BusRecord] = {}
        self._undecodable: list[BusRecord] = []

    async def load(self) -> list[Envelope]:
        loaded: list[Envelope] = []
        for record in self._bus.records(self.topic):
            envelope = record.envelope()
            if envelope is None:
                if record.value is not None:
                    self._undecodable.append(record)
                continue
            self._loaded.setdefault(envelope.id, record)
            loaded.append(envelope)
        return loaded

    async def dead_letter(self, envelope: Envelope, reason: str, exc: BaseException) -> None:
        record = self._loaded.get(envelope.id)
        if record is None:
            raise LookupError(f"{envelope.id} was not loaded by this follower")
        _dead_letter(self._bus, record, reason, exc, self._role)

    async def dead_letter_undecodable(self) -> int:
        sent = 0
        while self._undecodable:
            record = self._undecodable[0]
            _dead_letter(self._bus, record, "undecodable envelope", ValueError("undecodable"), "")
            self._undecodable.pop(0)
            sent += 1
        return sent

    async def start_at_end(self) -> None:
        return None

    def follow(self, apply: Apply) -> None:
        # Loaded records are kept only to dead-letter them before following starts.
        self._loaded.clear()
        self._undecodable.clear()

        async def deliver(record: BusRecord) -> None:
            envelope = record.envelope()
            if envelope is None:
                return
            try:
                await apply(envelope)
            except Exception:
                log.exception("could not apply %s from %s", envelope.id, self.topic)

        self._pump = _Pump(self._bus, [self.topic], deliver)
        self._pump.start()

    async def stop(self) -> None:
        if self._pump is not None:
            await self._pump.stop()


def _dead_letter(
    bus: InMemoryBus, record: BusRecord, reason: str, exc: BaseException, group: str
) -> None:
    headers = dead_letter_headers(
        reason,
        exc,
        topic=record.topic,
        partition=0,
        offset=record.offset,
        group=group,
        original=record.headers,
    )
    bus.append(f"{record.topic}.dlq", record.value, record.key, headers)


class InMemoryTable:
    """The ``Table`` of an in-memory bus: a write reaches the view once it is on the topic
    (as the real table's once acknowledged), and a failed one (``InMemoryBus.fail_next``)
    leaves the previous value; other writers' records reach the view as they are appended."""

    def __init__(self, bus: InMemoryBus, topic: str, source: str) -> None:
        self._bus = bus
        self._topic = topic
        self._source = source
        self._values: dict[str, Envelope] = {}
        self._writing = False

    async def start(self) -> None:
        for record in self._bus.records(self._topic):
            self._apply(record)
        self._bus.listen(self._topic, self._apply)

    async def stop(self) -> None:
        self._bus.unlisten(self._topic, self._apply)

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
        envelope = Envelope.wrap(
            payload, source=self._source, session_id=session_id or key, trace=trace
        )
        headers = [("keel-type", envelope.type.encode())]
        value = envelope.to_bytes()
        check_size(self._topic, value, key, headers)
        try:
            self._bus.append(self._topic, value, key, headers)
        except SendFailed:
            if wait:
                raise
            # The real table learns of a queued write's failure only from its ack: logged.
            log.error("write of %s to %s failed", key, self._topic)
            return envelope
        self._values[key] = envelope  # acknowledged: visible, started or not
        return envelope

    async def delete(self, key: str) -> None:
        self._bus.append(self._topic, None, key, [])
        self._values.pop(key, None)

    async def flush(self) -> None:
        return None

    def _apply(self, record: BusRecord) -> None:
        if record.key is None:
            return
        key = record.key.decode()
        envelope = record.envelope()
        if envelope is None:
            self._values.pop(key, None)
        else:
            self._values[key] = envelope
