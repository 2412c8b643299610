"""Sessions this process knows about: their status for ``Get`` and their progress events,
fanned out to live watchers for ``StreamEvents``.

The sessions this process runs: every change of their status is handed to a
``SessionListener`` (the ``keel.sessions`` index, ADR 0013), which is what any replica answers
``Get`` and ``Cancel`` from. Finished sessions are kept up to ``capacity``, oldest forgotten
first. The status follows the session's ``state`` events.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from keel_agent_loop.domain.models import AgentState, RequestContext
from keel_agent_loop.domain.state_machine import ALLOWED, TERMINAL, SessionStatus
from keel_contracts.errors import NotFound
from keel_contracts.events import ApprovalRequested, TaskCompleted, TaskFailed, TaskProgress


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RecordedEvent:
    session_id: str
    kind: str
    iteration: int
    detail: dict[str, Any]
    time: datetime
    # The id of the event's envelope on keel.task-events: what a client resumes after.
    event_id: str = ""


@dataclass
class SessionRecord:
    session_id: str
    status: SessionStatus
    trace: str = ""
    # Whose session it is: a caller of another tenant is told it does not exist.
    tenant: str = ""
    iteration: int = 0
    answer: str = ""
    error: str = ""
    failure_reason: str = ""
    events: list[RecordedEvent] = field(default_factory=list)
    # What was published to keel.results; republished when the task is delivered again.
    result: TaskCompleted | TaskFailed | None = None
    watchers: list[asyncio.Queue[RecordedEvent | None]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class SessionListener(Protocol):
    """Told of every change of a session's status run here, in order; must not block."""

    def changed(self, record: SessionRecord) -> None: ...


class SessionDirectory(Protocol):
    """Every replica's view of every session (the ``keel.sessions`` index)."""

    def get(self, session_id: str) -> SessionRecord | None: ...

    async def submitted(self, session_id: str, trace: str, tenant: str) -> None: ...


class EventLog(Protocol):
    """Every session's progress events, whichever replica runs it (``keel.task-events``)."""

    def known(self, session_id: str) -> bool: ...

    def watch(
        self, session_id: str, after_event_id: str = "", finished: bool = False
    ) -> AsyncIterator[RecordedEvent]: ...


class _NoListener:
    def changed(self, record: SessionRecord) -> None:
        """Nobody else needs to know (a unit test of the store alone)."""


class SessionStore:
    def __init__(
        self,
        capacity: int = 10_000,
        clock: Callable[[], datetime] = _now,
        listener: SessionListener | None = None,
    ) -> None:
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._capacity = capacity
        self._clock = clock
        self._listener = listener or _NoListener()

    def get(self, session_id: str) -> SessionRecord | None:
        return self._records.get(session_id)

    def submitted(self, session_id: str, trace: str = "", tenant: str = "") -> SessionRecord:
        """Known but not started yet (idle); an existing record is left as it is."""
        record = self._records.get(session_id)
        if record is None:
            record = SessionRecord(session_id, "idle", trace=trace, tenant=tenant)
            self._records[session_id] = record
            self._evict()
        return record

    def discard(self, session_id: str) -> None:
        """Forget an idle session whose submission failed, so a retry can submit it again."""
        record = self._records.get(session_id)
        if record is not None and record.status == "idle":
            del self._records[session_id]

    def started(self, state: AgentState) -> SessionRecord:
        """Run (or resumed) here: the record takes the state's status and iteration; a record
        that had finished is open again for watchers (a resumed redelivery)."""
        record = self.submitted(state.session_id, state.trace, state.tenant)
        record.tenant = state.tenant
        record.status = state.status
        record.iteration = state.iteration
        record.trace = state.trace
        record.result = None
        self._listener.changed(record)
        return record

    def finished(self, state: AgentState, result: TaskCompleted | TaskFailed) -> None:
        """Record the outcome and end every watcher's stream."""
        record = self.submitted(state.session_id, state.trace, state.tenant)
        record.status = state.status if state.finished else "failed"
        record.iteration = state.iteration
        record.answer = state.answer
        record.error = state.error
        record.failure_reason = state.failure_reason or ""
        record.result = result
        self._listener.changed(record)
        for queue in record.watchers:
            queue.put_nowait(None)
        record.watchers.clear()
        self._evict()

    def watch(self, session_id: str) -> AsyncIterator[RecordedEvent]:
        """The session's events so far, then live ones until it finishes. Raises ``NotFound``
        now (not on first iteration) for an unknown session."""
        record = self._records.get(session_id)
        if record is None:
            raise NotFound(f"unknown session {session_id!r}")
        backlog = list(record.events)
        queue: asyncio.Queue[RecordedEvent | None] | None = None
        if not record.finished:
            queue = asyncio.Queue()
            record.watchers.append(queue)
        return follow_events(record.watchers, backlog, queue)

    async def progress(self, ctx: RequestContext, event: TaskProgress) -> None:
        record = self.submitted(ctx.session_id, ctx.traceparent)
        recorded = RecordedEvent(
            ctx.session_id, event.kind, event.iteration, dict(event.detail), self._clock()
        )
        record.iteration = event.iteration
        if str(event.kind) == "state" and not record.finished:
            to = _status(event.detail.get("to"), record.status)
            # A terminal status is recorded by finished(), together with the answer or error:
            # a reader must never see "completed" without the answer.
            if to not in TERMINAL and to != record.status:
                record.status = to
                self._listener.changed(record)
        record.events.append(recorded)
        for queue in record.watchers:
            queue.put_nowait(recorded)

    async def approval_requested(self, ctx: RequestContext, request: ApprovalRequested) -> None:
        """Approval requests are watched through their ``approval_requested`` progress event."""

    def _evict(self) -> None:
        """Oldest finished sessions go first, then oldest idle ones (submitted here but run
        by another replica, so never finished here); then parked ones (their state is in
        their checkpoint); running sessions stay."""
        for stage in ("finished", "idle", "waiting_for_approval", "waiting_for_plan"):
            evictable = [
                sid
                for sid, rec in self._records.items()
                if (rec.finished if stage == "finished" else rec.status == stage)
            ]
            for session_id in evictable:
                if len(self._records) <= self._capacity:
                    return
                del self._records[session_id]


def _status(value: object, default: SessionStatus) -> SessionStatus:
    for status in ALLOWED:
        if value == status:
            return status
    return default


async def follow_events(
    watchers: list[asyncio.Queue[RecordedEvent | None]],
    backlog: list[RecordedEvent],
    queue: asyncio.Queue[RecordedEvent | None] | None,
) -> AsyncIterator[RecordedEvent]:
    """The backlog, then what arrives on ``queue`` (one of ``watchers``) until ``None`` ends the
    stream; the queue leaves ``watchers`` however the caller stops reading. Shared by this
    process's sessions and the history every replica follows (``adapters.event_history``)."""
    try:
        for event in backlog:
            yield event
        if queue is None:
            return
        while (event_or_end := await queue.get()) is not None:
            yield event_or_end
    finally:
        if queue is not None and queue in watchers:
            watchers.remove(queue)
