"""The session index over the compacted ``keel.sessions`` (key = session id; ADR 0013).

Every replica loads the topic at start and follows it (``runtime.table``), so ``Get`` and
``Cancel`` on any replica know a session another replica accepted or runs, and a restarted
replica still knows every finished one, without reading ``keel.results`` or
``keel.task-events``. Writers: the front door that accepted a session (``idle``, acknowledged
before its task is published, so no later write of the runner can be overtaken by it) and the
replica running it, at each change of status (``SessionListener``), in order, in the
background: a status must never hold up a session's step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pydantic import ValidationError

from keel_agent_loop.domain.sessions import SessionRecord
from keel_agent_loop.domain.state_machine import ALLOWED, SessionStatus
from keel_contracts.events import SessionSummary, TaskCompleted, TaskFailed
from keel_core.bus.table import Table

log = logging.getLogger(__name__)


# Statuses a session passes through several times a step: their summaries wait up to
# ``coalesce_s`` so only the latest is written; every other change is written at once.
IN_STEP: frozenset[SessionStatus] = frozenset({"planning", "executing_tool", "processing_result"})


class SessionIndex:
    def __init__(self, table: Table, coalesce_s: float = 0.1) -> None:
        self._table = table
        self._coalesce_s = coalesce_s
        # The newest unwritten summary per session (an older one it replaced is never written).
        self._latest: dict[str, SessionSummary] = {}
        self._dirty = asyncio.Event()
        self._urgent = False
        self._writing = False
        self._settled = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def get(self, session_id: str) -> SessionRecord | None:
        """The session as the index holds it (written by whichever replica); None if unknown."""
        envelope = self._table.get(session_id)
        if envelope is None or envelope.type != SessionSummary.event_type:
            return None
        try:
            return record_of(session_id, envelope.parse(SessionSummary))
        except (ValidationError, ValueError) as exc:
            log.warning("ignoring unreadable summary of %s: %s", session_id, exc)
            return None

    async def submitted(self, session_id: str, trace: str, tenant: str) -> None:
        """Accepted here: acknowledged before the task goes out (raises when not written)."""
        summary = SessionSummary(status="idle", tenant=tenant, trace=trace)
        await self._table.put(session_id, summary, session_id=session_id, trace=trace)

    def changed(self, record: SessionRecord) -> None:
        """``SessionListener``: keep the record's summary (as it is now) for the writer. A
        step moves a session through three statuses in a few milliseconds and another replica
        asking needs only the latest: those wait ``coalesce_s`` and only the newest per
        session is written; any other status (parked, finished) goes out at once, with it."""
        summary = summary_of(record)
        known = self.get(record.session_id) if not summary.tenant else None
        if known is not None:
            # A record that never learnt its tenant must not make the session everyone's.
            summary = summary.model_copy(update={"tenant": known.tenant})
        self._latest.pop(record.session_id, None)  # re-inserted last: written in change order
        self._latest[record.session_id] = summary
        if summary.status not in IN_STEP:
            self._urgent = True
        self._dirty.set()

    async def forget(self, session_ids: list[str]) -> None:
        """Tombstone the summaries of sessions whose end markers were swept: the index does
        not grow with every session ever run. A tombstone that fails is retried at the next
        sweep of another replica or logged here (the summary then stays, harmlessly)."""
        for session_id in session_ids:
            self._latest.pop(session_id, None)
            try:
                await self._table.delete(session_id)
            except Exception as exc:  # noqa: BLE001 - a stale summary is harmless
                log.warning("summary of %s not tombstoned: %s", session_id, exc)

    async def flush(self) -> None:
        """Until every summary kept so far has been acknowledged (or refused and logged)."""
        while self._writer is not None and (self._latest or self._writing):
            self._urgent = True
            self._settled.clear()
            self._dirty.set()
            await self._settled.wait()
        await self._table.flush()

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="session-index-writer")

    async def stop(self) -> None:
        """Write what is kept (a status lost in a crash is rewritten at the next change, and a
        finished session's at its redelivery), then stop."""
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=5.0)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def _write(self) -> None:
        while True:
            await self._dirty.wait()
            self._writing = True
            try:
                if not self._urgent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._until_urgent(), self._coalesce_s)
                self._dirty.clear()
                self._urgent = False
                batch, self._latest = self._latest, {}
                for session_id, summary in batch.items():
                    await self._put(session_id, summary)
            finally:
                self._writing = False
                self._settled.set()

    async def _until_urgent(self) -> None:
        while not self._urgent:
            self._dirty.clear()
            await self._dirty.wait()

    async def _put(self, session_id: str, summary: SessionSummary) -> None:
        try:
            await self._table.put(
                session_id, summary, session_id=session_id, trace=summary.trace, wait=False
            )
        except Exception as exc:  # noqa: BLE001 - the next change writes it again
            log.error("summary of %s not written: %s", session_id, exc)


def summary_of(record: SessionRecord) -> SessionSummary:
    result: dict[str, object] = {}
    if record.result is not None:
        result = {"type": record.result.event_type, "data": record.result.model_dump(mode="json")}
    return SessionSummary(
        status=record.status,
        tenant=record.tenant,
        iteration=record.iteration,
        answer=record.answer,
        error=record.error,
        failure_reason=record.failure_reason,
        trace=record.trace,
        result=result,
    )


def record_of(session_id: str, summary: SessionSummary) -> SessionRecord:
    result: TaskCompleted | TaskFailed | None = None
    data = summary.result.get("data")
    if isinstance(data, dict):
        kind = summary.result.get("type")
        result = (
            TaskCompleted.model_validate(data)
            if kind == TaskCompleted.event_type
            else TaskFailed.model_validate(data)
        )
    return SessionRecord(
        session_id,
        _status(summary.status),
        trace=summary.trace,
        tenant=summary.tenant,
        iteration=summary.iteration,
        answer=summary.answer,
        error=summary.error,
        failure_reason=summary.failure_reason,
        result=result,
    )


def _status(value: str) -> SessionStatus:
    for status in ALLOWED:
        if value == status:
            return status
    return "idle"
