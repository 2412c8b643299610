"""What the AgentService offers callers: submit a task, follow a session, cancel one.

Submit and cancel publish to Kafka (the sessions run wherever ``keel.tasks`` is consumed).
Get, watch and cancel answer for any session, whichever replica accepted or runs it: from the
``keel.sessions`` index and the ``keel.task-events`` history every replica follows (ADR 0013),
with this process's own sessions as it sees them now (the index lags by a fetch). Errors are
``keel_contracts.errors`` types, which the gRPC server maps to status codes in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.models import FinishedSession
from keel_agent_loop.domain.ports import CheckpointStore, NoCheckpoints
from keel_agent_loop.domain.sessions import (
    EventLog,
    RecordedEvent,
    SessionDirectory,
    SessionRecord,
    SessionStore,
)
from keel_agent_loop.domain.state_machine import TERMINAL, SessionStatus
from keel_contracts.errors import NotFound, Unavailable
from keel_contracts.events import (
    Envelope,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
)
from keel_contracts.topics import CONTROL, TASKS
from keel_core.bus.producer import Publisher
from keel_core.tracing import new_traceparent

SOURCE = "agent-loop"


# How long a stream's last event may wait for the session's finish to be readable by get().
END_WAIT_S = 10.0
END_POLL_S = 0.02


class FrontDoor:
    def __init__(
        self,
        store: SessionStore,
        publisher: Publisher,
        *,
        checkpoints: CheckpointStore | None = None,
        cancels: CancelFlags | None = None,
        directory: SessionDirectory | None = None,
        history: EventLog | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._checkpoints = checkpoints or NoCheckpoints()
        self._cancels = cancels or CancelFlags()
        # None: this process alone (a unit test of the front door).
        self._directory = directory
        self._history = history

    def _record(self, session_id: str) -> SessionRecord | None:
        """This process's record while it runs the session (fresher than the index), else the
        index's; a finished session in the index wins over a record left here. Either way an
        end marker wins over a record still running: the result is out once the marker is
        written, while this process records the finish only after the episode is stored (a
        memory replica dying can hold that up for a step's outage deadline)."""
        local = self._store.get(session_id)
        indexed = self._directory.get(session_id) if self._directory is not None else None
        if indexed is None:
            return local
        if local is None or indexed.finished or local.status == "idle":
            return _ended(indexed, self._marker(session_id))
        return _ended(local, self._marker(session_id))

    def _marker(self, session_id: str) -> FinishedSession | None:
        try:
            return self._checkpoints.finished(session_id)
        except ValueError:  # unreadable (logged by the store): the record's answer stands
            return None

    async def submit(self, session_id: str, task: TaskSubmitted) -> None:
        """Publish the task (with a new trace) unless this process already knows the session:
        a caller-chosen id seen before is a task already on its way (idempotent). Raises
        ``Unavailable`` when the task could not be published."""
        known = self._record(session_id)
        # An idle session in the index may be one whose task was never published: send it.
        if self._store.get(session_id) is not None or (
            known is not None and known.status != "idle"
        ):
            return
        trace = new_traceparent()
        envelope = Envelope.wrap(task, source=SOURCE, session_id=session_id, trace=trace)
        self._store.submitted(session_id, trace, task.tenant)
        try:
            if self._directory is not None:
                # Acknowledged before the task goes out: the runner's writes come after it.
                await self._directory.submitted(session_id, trace, task.tenant)
            await self._publisher.publish(TASKS, envelope, key=session_id)
        except Exception as exc:
            self._store.discard(session_id)
            raise Unavailable(f"could not publish the task: {exc}") from exc

    def get(self, session_id: str, tenant: str | None = None) -> SessionRecord:
        """``tenant``: the caller's (None: any, a service or an operator); a session of another
        tenant is answered as unknown, so its existence does not leak either."""
        record = self._record(session_id)
        if record is None or not _visible(record.tenant, tenant):
            raise NotFound(f"unknown session {session_id!r}")
        return record

    def watch(
        self, session_id: str, tenant: str | None = None, after_event_id: str = ""
    ) -> AsyncIterator[RecordedEvent]:
        """The session's events so far (only those after ``after_event_id``), then live ones
        until it finishes (``NotFound``)."""
        record = self.get(session_id, tenant)
        if self._history is None:
            return self._store.watch(session_id)
        # A finished session whose events are not held (forgotten, expired) has no more to
        # wait for; one whose events are held ends with its last event.
        finished = record.finished and not self._history.known(session_id)
        return self._once_recorded(
            session_id, self._history.watch(session_id, after_event_id, finished)
        )

    async def _once_recorded(
        self, session_id: str, events: AsyncIterator[RecordedEvent]
    ) -> AsyncIterator[RecordedEvent]:
        """A session's last event is handed on once ``get`` says it finished (its end marker
        written, or its finish indexed), at most ``END_WAIT_S`` later: the replica running it
        emits that event before it writes the marker, and a caller that stops at the last
        event and then asks ``get`` must not be told the session is still running."""
        async for event in events:
            if event.kind in TERMINAL:
                await self._until_finished(session_id)
            yield event

    async def _until_finished(self, session_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_WAIT_S
        while loop.time() < deadline:
            record = self._record(session_id)
            if record is None or record.finished:
                return
            await asyncio.sleep(END_POLL_S)

    async def cancel(self, session_id: str, reason: str, tenant: str | None = None) -> bool:
        """Durable on ``keel.tasks`` (reaches a parked or not yet started session) and broadcast
        on ``keel.control`` (reaches the replica running it). False for a session this process
        saw finish or whose end marker it holds (not cancelled again); ``NotFound`` for one
        no replica knows of."""
        record = self._record(session_id)
        state = self._checkpoints.get(session_id)
        owner = record.tenant if record is not None else state.tenant if state is not None else ""
        if not _visible(owner, tenant):
            raise NotFound(f"unknown session {session_id!r}")
        if (record is not None and record.finished) or self._checkpoints.finished(session_id):
            return False
        if record is None and state is None:
            raise NotFound(f"unknown session {session_id!r}")
        reason = reason or "cancelled by request"
        trace = record.trace if record is not None else ""
        cancel = TaskCancelRequested(reason=reason, requested_by="AgentService.Cancel")
        envelope = Envelope.wrap(cancel, source=SOURCE, session_id=session_id, trace=trace)
        self._cancels.request(session_id, reason)
        try:
            await self._publisher.publish(TASKS, envelope, key=session_id)
            await self._publisher.publish(CONTROL, envelope, key=session_id)
        except Exception as exc:
            raise Unavailable(f"could not publish the cancel request: {exc}") from exc
        return True


def _ended(record: SessionRecord, marker: FinishedSession | None) -> SessionRecord:
    """The index's record, or the outcome its end marker holds when the index missed it (a
    crash between the marker and the summary of the finish)."""
    if record.finished or marker is None:
        return record
    result = marker.payload()
    if isinstance(result, TaskCompleted):
        status: SessionStatus = "completed"
    else:
        status = "cancelled" if result.reason == "cancelled" else "failed"
    return replace(
        record,
        status=status,
        iteration=result.iterations,
        answer=result.answer if isinstance(result, TaskCompleted) else "",
        error=result.error if isinstance(result, TaskFailed) else "",
        failure_reason=result.reason if isinstance(result, TaskFailed) else "",
        result=result,
    )


def _visible(owner: str, caller: str | None) -> bool:
    """A session is the caller's when the caller may see every tenant (None), or the session's
    tenant is known and the same ("" only from a record that predates tenants: visible)."""
    return caller is None or not owner or owner == caller
