"""What a dead-lettered record carries: its original bytes and key on ``<topic>.dlq``, and
where it came from and why in ``keel-dlq-*`` headers. One builder for every reader that
rejects a record (the consumer loop, and loaders that read a topic at start), so whoever
inspects the DLQ reads one format."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from keel_contracts.events.envelope import Envelope
from keel_core.bus.producer import Headers

PREFIX = "keel-dlq-"


def dead_letter_headers(
    reason: str,
    exc: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    group: str,
    original: Iterable[tuple[str, bytes]] = (),
) -> Headers:
    """The DLQ headers, then the record's own headers (less any earlier ``keel-dlq-*``)."""
    return [
        (f"{PREFIX}reason", reason.encode()),
        (f"{PREFIX}exception", type(exc).__name__.encode()),
        (f"{PREFIX}trace", "".join(traceback.format_exception(exc))[-2000:].encode()),
        (f"{PREFIX}topic", topic.encode()),
        (f"{PREFIX}partition", str(partition).encode()),
        (f"{PREFIX}offset", str(offset).encode()),
        (f"{PREFIX}group", group.encode()),
        (f"{PREFIX}time", datetime.now(UTC).isoformat().encode()),
        *[(k, v) for k, v in original if not k.startswith(PREFIX)],
    ]


class SourceRecord(Protocol):
    """What the headers need of a rejected record (aiokafka's ``ConsumerRecord`` has it)."""

    topic: str
    partition: int
    offset: int
    headers: Any


def headers_for(record: SourceRecord, reason: str, exc: BaseException, group: str) -> Headers:
    """``dead_letter_headers`` for a record read from the broker."""
    return dead_letter_headers(
        reason,
        exc,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        group=group,
        original=record.headers or (),
    )


class DeadLetterFailed(Exception):
    """A record could not be written to its DLQ, even after retries: the reader must stop
    without passing it (a restart reads it again) rather than skip it or stall on it."""


@runtime_checkable
class DeadLettering(Protocol):
    """A reader that loaded a topic and can send a loaded record its user rejected to the DLQ
    (with the record's original bytes and origin, which only the reader knows).

    ``TopicFollower`` and ``keel_core.testing.InMemoryFollower`` are; a start-up rebuild that
    finds a record it cannot use dead-letters it this way instead of failing the start.
    """

    async def dead_letter(self, envelope: Envelope, reason: str, exc: BaseException) -> None:
        """Send the loaded record ``envelope`` came from to ``<topic>.dlq``."""
        ...

    async def dead_letter_undecodable(self) -> int:
        """Send the records the last ``load()`` could not decode to their DLQ; how many."""
        ...
