"""An in-memory publisher that keeps what was sent, one that fails sends on demand, and an
audit emitter over the first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from keel_contracts.events.envelope import Envelope
from keel_contracts.events.types import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Headers, Publisher
from keel_core.testing.bus import SendFailed
from keel_core.trust import Signer


@dataclass
class SentRecord:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers
    offset: int = -1


@dataclass
class InMemoryPublisher:
    """Keeps what would have been produced, in order."""

    sent: list[SentRecord] = field(default_factory=list)

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        await self.send_raw(topic, envelope.to_bytes(), key or envelope.session_id, [])

    async def enqueue(
        self, topic: str, envelope: Envelope, key: str | None = None
    ) -> asyncio.Future[Any]:
        await self.publish(topic, envelope, key)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(self.sent[-1])  # like aiokafka's RecordMetadata: has the offset
        return done

    async def flush(self) -> None:
        return None

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        raw_key = key.encode() if isinstance(key, str) else key
        self.sent.append(SentRecord(topic, value, raw_key, headers, len(self.sent)))
        return len(self.sent) - 1

    def envelopes(self, topic: str) -> list[Envelope]:
        return [Envelope.from_bytes(r.value) for r in self.sent if r.topic == topic and r.value]

    def audit_records(self) -> list[AuditRecord]:
        return [e.parse(AuditRecord) for e in self.envelopes(AUDIT)]


def in_memory_audit(
    source: str = "test", *, signer: Signer | None = None, producer_id: str = ""
) -> tuple[AuditEmitter, InMemoryPublisher]:
    """An audit emitter over an in-memory publisher; call ``emitter.start()`` inside a loop.
    With ``signer`` it signs as identity ``source`` (what a service with trust material does);
    its chain heads land on the publisher too (``keel.audit.heads``)."""
    publisher = InMemoryPublisher()
    emitter = AuditEmitter(
        publisher, producer_id or f"{source}@test", source=source, identity=source, signer=signer
    )
    return emitter, publisher


class FlakyPublisher:
    """A ``Publisher`` whose next sends fail on demand, over another one (an
    ``InMemoryPublisher`` by default): how a test makes the broker refuse a write.

    ``fail_next(n)`` makes the next ``n`` sends (to ``topic``, or to any topic) raise
    ``SendFailed``; an ``enqueue`` fails the way Kafka's does, through its future.
    """

    def __init__(self, inner: Publisher | None = None) -> None:
        self.inner: Publisher = inner if inner is not None else InMemoryPublisher()
        self.failed = 0
        self._failing: dict[str | None, int] = {}

    def fail_next(self, times: int = 1, *, topic: str | None = None) -> None:
        self._failing[topic] = self._failing.get(topic, 0) + times

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        self._maybe_fail(topic)
        await self.inner.publish(topic, envelope, key)

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        self._maybe_fail(topic)
        return await self.inner.send_raw(topic, value, key, headers)

    async def enqueue(
        self, topic: str, envelope: Envelope, key: str | None = None
    ) -> asyncio.Future[Any]:
        try:
            self._maybe_fail(topic)
        except SendFailed as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
        return await self.inner.enqueue(topic, envelope, key)

    async def flush(self) -> None:
        await self.inner.flush()

    def _maybe_fail(self, topic: str) -> None:
        for which in (topic, None):
            left = self._failing.get(which, 0)
            if left:
                self._failing[which] = left - 1
                self.failed += 1
                raise SendFailed(f"injected send failure on {topic}")
