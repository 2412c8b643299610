"""An in-memory publisher that keeps what was sent, and an audit emitter over it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from keel_contracts.events.envelope import Envelope
from keel_contracts.events.types import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Headers


@dataclass
class SentRecord:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers


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
        done.set_result(None)
        return done

    async def flush(self) -> None:
        return None

    async def send_raw(
        self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers
    ) -> int:
        raw_key = key.encode() if isinstance(key, str) else key
        self.sent.append(SentRecord(topic, value, raw_key, headers))
        return len(self.sent) - 1

    def envelopes(self, topic: str) -> list[Envelope]:
        return [Envelope.from_bytes(r.value) for r in self.sent if r.topic == topic and r.value]

    def audit_records(self) -> list[AuditRecord]:
        return [e.parse(AuditRecord) for e in self.envelopes(AUDIT)]


def in_memory_audit(source: str = "test") -> tuple[AuditEmitter, InMemoryPublisher]:
    """An audit emitter over an in-memory publisher; call ``emitter.start()`` inside a loop."""
    publisher = InMemoryPublisher()
    return AuditEmitter(publisher, f"{source}@test", source=source), publisher
