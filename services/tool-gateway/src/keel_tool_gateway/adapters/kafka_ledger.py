"""The durable ledger: the compacted ``keel.tool-results`` topic (key = idempotency key) read
through a ``keel_core.bus.table.Table`` (``runtime.table(TOOL_RESULTS)``: the compacted-topic
one in the service, an in-memory one in component tests). Every replica loads the whole topic at
start and follows it, so a key finished by any replica, before or after a restart, is answered
from here.

A finished call whose write the broker refused is kept *pending* and written again in the
background (backing off up to ``retry_max_s``) until it lands. ``get`` never answers a pending
entry (only what the broker acknowledged is "recorded"); a repeated call reaches ``put`` again
(the execution service keeps the unrecorded result), which waits up to ``pending_wait_s`` for
the background write and raises ``ResultPending`` if it has not landed: the tool is never run
again for it, and the caller retries later.

The same key holds an ``at_most_once`` call's intent (``ToolCallStarted``, written before the
run) until its result replaces it; ``get`` answers results only, ``started`` intents only.

The ledger does not trust the bus: every record and intent this gateway writes carries an HMAC
(``TrustMaterial.ledger_mac()``, a key only the tool gateway holds) over its canonical JSON,
key included (``record_bytes``). A record whose MAC is missing or wrong, or that sits under
another key than its own, was written by someone else: it is never answered (the call runs and
its real result replaces it), it is logged, and it is audited ``security.denied`` once per key
(``on_forged``). Without a key (the insecure dev mode) nothing is signed or checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from keel_contracts.canonical import canonical_json
from keel_contracts.events import ToolCallStarted, ToolResultRecorded
from keel_core.bus.table import Table
from keel_core.trust import Mac
from keel_tool_gateway.domain.ledger import LedgerEntry, SecurityDenied, StartedEntry
from keel_tool_gateway.domain.models import ExecutionResult, ExecutionStatus
from keel_tool_gateway.errors import ToolGatewayError

log = logging.getLogger(__name__)

FORGED = "ledger record without a valid MAC of the tool gateway (not written by it): ignored"

_Record = TypeVar("_Record", ToolResultRecorded, ToolCallStarted)

_STORED: dict[ExecutionStatus, Literal["ok", "error", "denied"]] = {
    "ok": "ok",
    "error": "error",
    "denied": "denied",
}


class ResultPending(ToolGatewayError):
    """The result of this key is still being written in the background: not yet recorded."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the result of {key!r} is not yet recorded (its write is being retried)")


@dataclass
class _Pending:
    record: ToolResultRecorded
    session_id: str
    trace: str
    written: asyncio.Future[None]
    task: asyncio.Task[None] | None = None


class KafkaLedger:
    def __init__(
        self,
        table: Table,
        *,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        pending_wait_s: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        mac: Mac | None = None,
        on_forged: SecurityDenied | None = None,
    ) -> None:
        self._table = table
        # None: the insecure dev mode (nothing signed, nothing checked).
        self._mac = mac
        self._on_forged = on_forged
        # Keys whose forged record was already reported (audited once per key).
        self._reported: set[str] = set()
        self._reports: set[asyncio.Task[None]] = set()
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._pending_wait_s = pending_wait_s
        self._sleep = sleep
        # Finished calls whose write was refused, by key: retried in the background.
        self._pending: dict[str, _Pending] = {}

    @property
    def pending(self) -> list[str]:
        """Keys whose result is not yet durable (being written in the background)."""
        return list(self._pending)

    def get(self, key: str) -> LedgerEntry | None:
        record = self._read(key, ToolResultRecorded)
        if record is None:
            return None
        result = ExecutionResult(
            status=record.status,
            output=record.output,
            error=record.error,
            rule_id=record.rule_id,
            duration_ms=record.duration_ms,
            truncated=record.truncated,
        )
        return LedgerEntry(
            record.fingerprint, record.tool, result, record.tenant, record.session_id
        )

    def started(self, key: str) -> StartedEntry | None:
        record = self._read(key, ToolCallStarted)
        if record is None:
            return None
        return StartedEntry(
            record.fingerprint,
            record.tool,
            record.instance,
            record.deadline,
            record.tenant,
            record.session_id,
        )

    def _read(self, key: str, kind: type[_Record]) -> _Record | None:
        """The key's record of this kind, if it is readable and (with a key) the tool gateway
        wrote it."""
        envelope = self._table.get(key)
        if envelope is None or envelope.type != kind.event_type:
            return None
        try:
            record = envelope.parse(kind)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring unreadable ledger record %s: %s", key, exc)
            return None
        if self._mac is None:
            return record
        if record.idempotency_key == key and self._mac.verify(record_bytes(record), record.mac):
            return record
        self._report(key, envelope.session_id, envelope.trace)
        return None

    def _report(self, key: str, session_id: str, trace: str) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("ledger %s: %s", key, FORGED)
        if self._on_forged is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._on_forged(key, FORGED, session_id, trace), name=f"ledger-forged-{key}"
        )
        self._reports.add(task)
        task.add_done_callback(self._reported_done)

    def _reported_done(self, task: asyncio.Task[None]) -> None:
        self._reports.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a forged ledger record could not be audited: %r", task.exception())

    def _signed(self, record: _Record) -> _Record:
        if self._mac is None:
            return record
        return record.model_copy(update={"mac": self._mac.mac(record_bytes(record))})

    async def begin(
        self, key: str, entry: StartedEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Returns once the broker has acknowledged the intent; a refused write raises (and is
        not retried: the call then does not run)."""
        record = self._signed(
            ToolCallStarted(
                idempotency_key=key,
                tool=entry.tool,
                fingerprint=entry.fingerprint,
                instance=entry.instance,
                deadline=entry.deadline,
                tenant=entry.tenant,
                session_id=entry.session_id,
            )
        )
        await self._table.put(key, record, session_id=session_id, trace=trace)

    async def abandon(self, key: str) -> None:
        if self.started(key) is not None:
            await self._table.delete(key)

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Returns once the broker has acknowledged the record (acks=all). A refused write is
        kept and retried in the background, and the error raised; a put of a key whose write
        is pending waits (bounded) for that write instead, and raises ``ResultPending`` if it
        has not landed."""
        pending = self._pending.get(key)
        if pending is not None:
            await self._wait_for(key, pending)
            return
        record = self._signed(_record_of(key, entry))
        try:
            await self._table.put(key, record, session_id=session_id, trace=trace)
        except Exception as exc:
            log.error("ledger write of %s failed, retrying in the background: %r", key, exc)
            self._keep(key, record, session_id, trace)
            raise

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait (up to ``timeout_s``) for the pending writes to land, and for the audit records
        of forged records to be written; True when no write is left."""
        waiting: list[asyncio.Future[None]] = [p.written for p in self._pending.values()]
        waiting += self._reports
        if waiting:
            await asyncio.wait(waiting, timeout=timeout_s)
        return not self._pending

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Give the pending writes ``grace_s`` to land, then stop retrying them: a result still
        pending is logged as never recorded (a retry of its key would run the tool again)."""
        await self.flush(grace_s)
        for key, pending in list(self._pending.items()):
            log.error("ledger: the result of %s was never recorded", key)
            if pending.task is not None:
                pending.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending.task
        self._pending.clear()

    def _keep(self, key: str, record: ToolResultRecorded, session_id: str, trace: str) -> None:
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = _Pending(record, session_id, trace, written)
        self._pending[key] = pending
        pending.task = asyncio.create_task(self._retry(key, pending), name=f"ledger-{key}")

    async def _retry(self, key: str, pending: _Pending) -> None:
        delay = self._retry_initial_s
        try:
            while True:
                await self._sleep(delay)
                if self.get(key) is not None:
                    break  # a result recorded meanwhile (read back from the topic): keep it
                try:
                    await self._table.put(
                        key, pending.record, session_id=pending.session_id, trace=pending.trace
                    )
                    break
                except Exception as exc:  # noqa: BLE001 - kept and retried until it lands
                    log.warning("ledger write of %s failed again: %r", key, exc)
                    delay = min(delay * 2, self._retry_max_s)
            log.info("ledger: the result of %s is recorded", key)
            pending.written.set_result(None)
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
            if not pending.written.done():
                pending.written.cancel()

    async def _wait_for(self, key: str, pending: _Pending) -> None:
        # asyncio.wait neither cancels the write's future on time-out nor raises for it.
        await asyncio.wait([pending.written], timeout=self._pending_wait_s)
        if not pending.written.done() or pending.written.cancelled():
            raise ResultPending(key)


def _record_of(key: str, entry: LedgerEntry) -> ToolResultRecorded:
    status = _STORED.get(entry.result.status)
    if status is None:
        raise ValueError(f"a {entry.result.status} result is not stored in the ledger")
    result = entry.result
    return ToolResultRecorded(
        idempotency_key=key,
        tool=entry.tool,
        fingerprint=entry.fingerprint,
        status=status,
        output=result.output,
        error=result.error,
        rule_id=result.rule_id,
        duration_ms=result.duration_ms,
        truncated=result.truncated,
        tenant=entry.tenant,
        session_id=entry.session_id,
    )


def record_bytes(record: ToolResultRecorded | ToolCallStarted) -> bytes:
    """What a ledger MAC covers: the record's type and every field but the MAC itself (the
    idempotency key, tenant and session included), as canonical JSON."""
    fields = record.model_dump(mode="json", exclude={"mac"})
    return canonical_json({"type": record.event_type, **fields}).encode()
