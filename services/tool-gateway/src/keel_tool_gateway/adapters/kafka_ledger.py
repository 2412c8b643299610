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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from keel_contracts.events import ToolCallStarted, ToolResultRecorded
from keel_core.bus.table import Table
from keel_tool_gateway.domain.ledger import LedgerEntry, StartedEntry
from keel_tool_gateway.domain.models import ExecutionResult, ExecutionStatus
from keel_tool_gateway.errors import ToolGatewayError

log = logging.getLogger(__name__)

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
    ) -> None:
        self._table = table
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
        envelope = self._table.get(key)
        if envelope is None or envelope.type != ToolResultRecorded.event_type:
            return None
        try:
            record = envelope.parse(ToolResultRecorded)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring unreadable ledger record %s: %s", key, exc)
            return None
        result = ExecutionResult(
            status=record.status,
            output=record.output,
            error=record.error,
            rule_id=record.rule_id,
            duration_ms=record.duration_ms,
            truncated=record.truncated,
        )
        return LedgerEntry(record.fingerprint, record.tool, result)

    def started(self, key: str) -> StartedEntry | None:
        envelope = self._table.get(key)
        if envelope is None or envelope.type != ToolCallStarted.event_type:
            return None
        try:
            record = envelope.parse(ToolCallStarted)
        except ValueError as exc:
            log.warning("ignoring unreadable ledger intent %s: %s", key, exc)
            return None
        return StartedEntry(record.fingerprint, record.tool, record.instance, record.deadline)

    async def begin(
        self, key: str, entry: StartedEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Returns once the broker has acknowledged the intent; a refused write raises (and is
        not retried: the call then does not run)."""
        record = ToolCallStarted(
            idempotency_key=key,
            tool=entry.tool,
            fingerprint=entry.fingerprint,
            instance=entry.instance,
            deadline=entry.deadline,
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
        record = _record_of(key, entry)
        try:
            await self._table.put(key, record, session_id=session_id, trace=trace)
        except Exception as exc:
            log.error("ledger write of %s failed, retrying in the background: %r", key, exc)
            self._keep(key, record, session_id, trace)
            raise

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait (up to ``timeout_s``) for the pending writes to land; True when none is left."""
        waiting = [pending.written for pending in self._pending.values()]
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
    )
