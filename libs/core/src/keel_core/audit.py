"""The audit emitter: every decision a service makes lands on ``keel.audit``.

Each producer chains its records: a record's ``hash`` covers its content and the previous
record's hash, so deleting, reordering or editing a record breaks the chain. One background
task enqueues records in chain order without waiting between them (acks are pipelined);
``record()`` returns once the broker has acknowledged its own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.events.envelope import Envelope
from keel_contracts.events.types import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.bus.producer import Publisher

GENESIS = "0" * 64

log = logging.getLogger(__name__)


def record_hash(fields: dict[str, Any]) -> str:
    """Hash of a record's content without its own ``hash`` field."""
    return sha256_hex(canonical_json({k: v for k, v in fields.items() if k != "hash"}))


def verify_chain(records: list[AuditRecord]) -> int | None:
    """Index of the first record that breaks its producer's chain, or None if all hold."""
    last: dict[str, tuple[int, str]] = {}
    for index, rec in enumerate(records):
        seq, prev = last.get(rec.producer, (-1, GENESIS))
        if rec.sequence != seq + 1 or rec.prev_hash != prev:
            return index
        if record_hash(rec.model_dump()) != rec.hash:
            return index
        last[rec.producer] = (rec.sequence, rec.hash)
    return None


class AuditEmitter:
    def __init__(
        self, producer: Publisher, producer_id: str, source: str, wait_for_ack: bool = True
    ) -> None:
        self._producer = producer
        self._wait_for_ack = wait_for_ack
        self._producer_id = producer_id
        self._source = source
        self._prev = GENESIS
        self._sequence = -1
        self._queue: asyncio.Queue[tuple[Envelope, asyncio.Future[None]]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_in_order(), name="audit-sender")

    async def record(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        session_id: str = "",
        details: dict[str, Any] | None = None,
        trace: str = "",
    ) -> AuditRecord:
        """Chain and enqueue one record; wait for the broker's acknowledgement unless the
        emitter was built with ``wait_for_ack=False`` (then a failed write is logged)."""
        self._sequence += 1
        fields: dict[str, Any] = {
            "producer": self._producer_id,
            "sequence": self._sequence,
            "action": action,
            "actor": actor,
            "subject": subject,
            "details": details or {},
            "prev_hash": self._prev,
        }
        # Round-trip through JSON so the hash is over exactly what consumers will read.
        fields = AuditRecord.model_validate({**fields, "hash": ""}).model_dump(mode="json")
        fields["hash"] = record_hash(fields)
        rec = AuditRecord.model_validate(fields)
        self._prev = rec.hash
        envelope = Envelope.wrap(rec, source=self._source, session_id=session_id, trace=trace)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((envelope, done))
        if self._wait_for_ack:
            await done
        else:
            done.add_done_callback(_log_failure)
        return rec

    async def close(self) -> None:
        """Send what is queued and wait for its acknowledgements, then stop the sender."""
        await self._queue.join()
        await self._producer.flush()
        if self._sender:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def _send_in_order(self) -> None:
        while True:
            envelope, done = await self._queue.get()
            try:
                acked = await self._producer.enqueue(AUDIT, envelope, key=self._producer_id)
                acked.add_done_callback(functools.partial(_settle, done))
            except Exception as exc:  # noqa: BLE001 - the caller gets the failure
                if not done.done():
                    done.set_exception(exc)
            finally:
                self._queue.task_done()


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("audit record not written: %s", exc)


def _settle(done: asyncio.Future[None], acked: asyncio.Future[Any]) -> None:
    if done.done():
        return
    if acked.cancelled():
        done.cancel()
    elif (exc := acked.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(None)
