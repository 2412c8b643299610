"""CheckpointStore over the compacted ``keel.checkpoints`` (key = session id).

Every replica loads the whole topic at start and follows it, so a session checkpointed by a
process that died is visible to the replica that takes over its partition. A key holds a
``SessionCheckpoint`` while the session runs or waits, then its ``SessionFinished`` marker
until ``expire_finished`` tombstones it (``FinishedSweeper``); plans keep ``PlanCheckpoint``
records under their own keys in the same topic, which this adapter never touches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from keel_agent_loop.domain.models import AgentState, FinishedSession
from keel_contracts.events import Envelope, SessionCheckpoint, SessionFinished
from keel_core.bus.table import Table
from keel_core.periodic import Periodic

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TableCheckpoints:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, session_id: str) -> AgentState | None:
        envelope = self._table.get(session_id)
        if envelope is None or envelope.type != SessionCheckpoint.event_type:
            return None
        try:
            checkpoint = envelope.parse(SessionCheckpoint)
            return AgentState.model_validate(checkpoint.state)
        except (ValidationError, ValueError) as exc:
            # Unusable (another schema, a bug): starting over beats never running the session.
            log.warning("ignoring unreadable checkpoint of %s: %s", session_id, exc)
            return None

    def finished(self, session_id: str) -> FinishedSession | None:
        envelope = self._table.get(session_id)
        if envelope is None or envelope.type != SessionFinished.event_type:
            return None
        try:
            marker = envelope.parse(SessionFinished)
            return FinishedSession(
                result=Envelope.model_validate(marker.result),
                state=AgentState.model_validate(marker.state) if marker.state else None,
                done=marker.done,
            )
        except (ValidationError, ValueError) as exc:
            # Unreadable, yet it says the session ended: never run it again on its account.
            log.error("unreadable end marker of %s: %s", session_id, exc)
            raise

    def keys(self) -> list[str]:
        return self._table.keys()

    async def save(self, state: AgentState, durable: bool = True) -> None:
        checkpoint = SessionCheckpoint(
            status=state.status,
            iteration=state.iteration,
            state=state.model_dump(mode="json"),
        )
        await self._table.put(
            state.session_id,
            checkpoint,
            session_id=state.session_id,
            trace=state.trace,
            wait=durable,
        )

    async def save_finished(self, finished: FinishedSession, durable: bool = True) -> None:
        state = finished.state
        marker = SessionFinished(
            status=state.status if state is not None else finished.result.type,
            result=finished.result.model_dump(mode="json"),
            state=state.model_dump(mode="json") if state is not None else {},
            done=finished.done,
        )
        await self._table.put(
            finished.session_id,
            marker,
            session_id=finished.session_id,
            trace=finished.result.trace,
            wait=durable,
        )

    async def delete(self, session_id: str) -> None:
        await self._table.delete(session_id)

    async def expire_finished(self, before: datetime) -> list[str]:
        """Tombstone the end markers of sessions that finished before ``before``; returns
        their ids. Checkpoints of live sessions and other keys (plans) are left alone."""
        expired: list[str] = []
        for key in self._table.keys():
            envelope = self._table.get(key)
            if envelope is None or envelope.type != SessionFinished.event_type:
                continue
            try:
                finished_at = Envelope.model_validate(envelope.data["result"]).time
            except (KeyError, ValidationError, ValueError):
                finished_at = envelope.time  # unreadable: age it by when it was written
            if finished_at < before:
                await self._table.delete(key)
                expired.append(key)
        return expired


class FinishedSweeper:
    """Tombstones finished-session markers once their grace period has passed, so the
    compacted topic (and every replica's view of it) does not grow with every session ever
    run. Every replica sweeps the whole table: a tombstone is idempotent, and no coordination
    is needed. The grace period must outlast the longest time a finished session's records can
    still be redelivered (the consumer's commit lag after a crash); a task redelivered later
    than that, to a process that never ran it, would run again."""

    def __init__(
        self,
        checkpoints: TableCheckpoints,
        retention_s: float,
        interval_s: float,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._checkpoints = checkpoints
        self._retention = timedelta(seconds=retention_s)
        self._now = now
        self._periodic = Periodic("finished-sweeper", interval_s, self.sweep)
        self.start = self._periodic.start
        self.stop = self._periodic.stop

    async def sweep(self) -> list[str]:
        """One pass: the ids whose markers were tombstoned."""
        expired = await self._checkpoints.expire_finished(self._now() - self._retention)
        if expired:
            log.info("tombstoned %d finished-session marker(s)", len(expired))
        return expired
