"""CheckpointStore over the compacted ``keel.checkpoints`` (key = session id).

Every replica loads the whole topic at start and follows it, so a session checkpointed by a
process that died is visible to the replica that takes over its partition. A key holds a
``SessionCheckpoint`` while the session runs or waits, then its ``SessionFinished`` marker
until ``expire_finished`` tombstones it (``FinishedSweeper``); plans keep ``PlanCheckpoint``
records under their own keys in the same topic, which this adapter never touches.

A state too large for one record is kept in pieces (``adapters.chunks``): they are written
and acknowledged before the head that names them, a head that supersedes them tombstones
those it no longer names, and the sweeper tombstones a finished session's pieces with its
marker (and pieces no head names, once older than the grace period: left by a crash between
the pieces and their head).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
from pydantic import ValidationError

from keel_agent_loop.adapters.chunks import (
    INLINE_MAX,
    CheckpointChunk,
    MissingChunks,
    as_state,
    encode,
    join,
    manifest_of,
    pieces,
)
from keel_agent_loop.domain.models import AgentState, FinishedSession
from keel_contracts.events import Envelope, SessionCheckpoint, SessionFinished
from keel_core.bus.table import Table
from keel_core.periodic import Periodic

log = logging.getLogger(__name__)

_HEADS = (SessionCheckpoint.event_type, SessionFinished.event_type)


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
            return self._state(checkpoint.state)
        except (ValidationError, ValueError) as exc:
            # Unusable (another schema, a bug, pieces missing): starting over beats never
            # running the session.
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
                state=self._marker_state(session_id, marker.state),
                done=marker.done,
            )
        except (ValidationError, ValueError) as exc:
            # Unreadable, yet it says the session ended: never run it again on its account.
            log.error("unreadable end marker of %s: %s", session_id, exc)
            raise

    def keys(self) -> list[str]:
        """The keys of sessions and plans (not those of the pieces of large states)."""
        return [
            key
            for key in self._table.keys()
            if (envelope := self._table.get(key)) is None
            or envelope.type != CheckpointChunk.event_type
        ]

    async def save(self, state: AgentState, durable: bool = True) -> None:
        # Dumped once: the bytes (for the size) are written from the same dict.
        stored = state.model_dump(mode="json")
        raw = pydantic_core.to_json(stored)
        inline = len(raw) <= INLINE_MAX
        current = self._pieces_of(state.session_id)
        if inline and not current:
            # The common case, as it always was: one record, no extra writes.
            await self._put_checkpoint(state, stored, wait=durable)
            return

        async def put_head(stored: dict[str, Any]) -> None:
            await self._put_checkpoint(state, stored, wait=True)

        try:
            await self._replace(state, stored if inline else raw, current, put_head)
        except Exception as exc:
            if durable:
                raise
            # Like a queued write that failed: the previous checkpoint (and its pieces) stand,
            # and losing this one only means re-running an iteration.
            log.error("checkpoint of %s not written: %s", state.session_id, exc)

    async def save_finished(self, finished: FinishedSession, durable: bool = True) -> None:
        state = finished.state
        result = finished.result.model_dump(mode="json")

        async def put(stored: dict[str, Any], wait: bool) -> None:
            marker = SessionFinished(
                status=state.status if state is not None else finished.result.type,
                result=result,
                state=stored,
                done=finished.done,
            )
            await self._table.put(
                finished.session_id,
                marker,
                session_id=finished.session_id,
                trace=finished.result.trace,
                wait=wait,
            )

        if state is None:
            # The finish is done. The pieces of the state stay until the marker is swept: this
            # write may be lost, and the marker it replaces must still find them.
            await put({}, durable)
            return
        stored = state.model_dump(mode="json")
        raw = pydantic_core.to_json(stored)
        inline = len(raw) + len(pydantic_core.to_json(result)) <= INLINE_MAX
        current = self._pieces_of(finished.session_id)
        if inline and not current:
            await put(stored, durable)
            return

        async def put_head(head: dict[str, Any]) -> None:
            await put(head, True)

        await self._replace(state, stored if inline else raw, current, put_head)

    async def delete(self, session_id: str) -> None:
        superseded = self._pieces_of(session_id)
        await self._table.delete(session_id)
        await self._drop(superseded)

    async def expire_finished(self, before: datetime) -> list[str]:
        """Tombstone the end markers of sessions that finished before ``before``, and their
        pieces; returns their ids. Checkpoints of live sessions and other keys (plans) are
        left alone; pieces no head names are tombstoned once written before ``before``."""
        expired: list[str] = []
        pieces_by_session: dict[str, list[tuple[str, datetime]]] = {}
        for key in self._table.keys():
            envelope = self._table.get(key)
            if envelope is None:
                continue
            if envelope.type == CheckpointChunk.event_type:
                pieces_by_session.setdefault(envelope.session_id, []).append((key, envelope.time))
                continue
            if envelope.type != SessionFinished.event_type:
                continue
            try:
                finished_at = Envelope.model_validate(envelope.data["result"]).time
            except (KeyError, ValidationError, ValueError):
                finished_at = envelope.time  # unreadable: age it by when it was written
            if finished_at < before:
                await self._table.delete(key)
                expired.append(key)
        await self._sweep_pieces(pieces_by_session, set(expired), before)
        return expired

    async def _sweep_pieces(
        self, by_session: dict[str, list[tuple[str, datetime]]], expired: set[str], before: datetime
    ) -> None:
        """Tombstone the pieces of swept sessions, and pieces no head names that were written
        before ``before`` (a crash between pieces and their head, a lost tombstone). Pieces
        are written just before the head that names them, so the age keeps this from racing
        a writer, here or in another replica."""
        orphans: list[str] = []
        for session_id, written in by_session.items():
            named = self._pieces_of(session_id)
            orphans += [
                key
                for key, time in written
                if key not in named and (session_id in expired or time < before)
            ]
        await self._drop(orphans)

    async def _put_checkpoint(self, state: AgentState, stored: dict[str, Any], wait: bool) -> None:
        checkpoint = SessionCheckpoint(status=state.status, iteration=state.iteration, state=stored)
        await self._table.put(
            state.session_id,
            checkpoint,
            session_id=state.session_id,
            trace=state.trace,
            wait=wait,
        )

    async def _replace(
        self,
        state: AgentState,
        content: dict[str, Any] | bytes,
        current: set[str],
        put_head: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        """Write a head whose state is ``content``: the dumped state itself, or its bytes to
        store in pieces — the pieces the current head does not name already first,
        acknowledged; then the head (acknowledged); then tombstones for the pieces of
        ``current`` it no longer names."""
        session_id = state.session_id
        named: set[str] = set()
        if isinstance(content, dict):
            stored = content
        else:
            manifest, by_key = pieces(session_id, content)
            await asyncio.gather(
                *(
                    self._table.put(key, encode(piece), session_id=session_id, trace=state.trace)
                    for key, piece in by_key.items()
                    if key not in current
                )
            )
            stored, named = as_state(manifest), set(manifest.keys)
        await put_head(stored)
        await self._drop(current - named)

    async def _drop(self, keys: Iterable[str]) -> None:
        """Tombstone pieces no head names any more. One that fails is left to the sweeper."""
        results = await asyncio.gather(
            *(self._table.delete(key) for key in keys), return_exceptions=True
        )
        for failed in (r for r in results if isinstance(r, BaseException)):
            log.warning("a superseded checkpoint piece stays until the sweep: %s", failed)

    def _pieces_of(self, session_id: str) -> set[str]:
        """The pieces the session's head in this view names."""
        envelope = self._table.get(session_id)
        if envelope is None or envelope.type not in _HEADS:
            return set()
        state = envelope.data.get("state")
        if not isinstance(state, dict):
            return set()
        try:
            manifest = manifest_of(state)
        except ValidationError:
            return set()
        return set(manifest.keys) if manifest is not None else set()

    def _state(self, stored: dict[str, Any]) -> AgentState:
        manifest = manifest_of(stored)
        if manifest is None:
            return AgentState.model_validate(stored)
        return AgentState.model_validate_json(join(manifest, self._table.get))

    def _marker_state(self, session_id: str, stored: dict[str, Any]) -> AgentState | None:
        if not stored:
            return None
        try:
            return self._state(stored)
        except MissingChunks as exc:
            # The result is intact and is what the marker is for: completing the finish
            # publishes it again (same envelope), without the hooks that need the state.
            log.error("end marker of %s: its state is gone (%s)", session_id, exc)
            return None


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
        on_expired: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        """``on_expired`` is told the sessions whose markers went (their index entries go
        with them)."""
        self._checkpoints = checkpoints
        self._retention = timedelta(seconds=retention_s)
        self._now = now
        self._on_expired = on_expired
        self._periodic = Periodic("finished-sweeper", interval_s, self.sweep)
        self.start = self._periodic.start
        self.stop = self._periodic.stop

    async def sweep(self) -> list[str]:
        """One pass: the ids whose markers were tombstoned."""
        expired = await self._checkpoints.expire_finished(self._now() - self._retention)
        if expired:
            log.info("tombstoned %d finished-session marker(s)", len(expired))
            if self._on_expired is not None:
                await self._on_expired(expired)
        return expired
