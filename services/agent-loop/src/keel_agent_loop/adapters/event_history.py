"""Every session's progress events, from ``keel.task-events`` (keyed by session; ADR 0013).

Each replica reads the topic once at start and then follows it, so ``StreamEvents`` on any
replica gives a session's backlog and then its live events, whichever replica runs it, and
after a restart. Nothing is read per call. Memory is bounded: the events of at most
``capacity`` sessions are kept, the sessions that ended longest ago forgotten first (then the
least recently active); a forgotten session's status is still answered from ``keel.sessions``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from keel_agent_loop.domain.sessions import RecordedEvent, follow_events
from keel_contracts.events import Envelope, TaskProgress
from keel_core.runtime import Follower

# A session's last event: its stream ends with it.
END_KINDS = frozenset({"completed", "failed", "cancelled"})


@dataclass
class _History:
    events: list[RecordedEvent] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    ended: bool = False
    watchers: list[asyncio.Queue[RecordedEvent | None]] = field(default_factory=list)


class EventHistory:
    def __init__(self, follower: Follower, capacity: int = 10_000) -> None:
        self._follower = follower
        self._capacity = capacity
        self._sessions: OrderedDict[str, _History] = OrderedDict()

    async def start(self) -> None:
        for envelope in await self._follower.load():
            self.apply(envelope)
        self._follower.follow(self._apply)

    async def stop(self) -> None:
        await self._follower.stop()

    def known(self, session_id: str) -> bool:
        return session_id in self._sessions

    def apply(self, envelope: Envelope) -> None:
        """Add one record of ``keel.task-events``; a record seen before (same envelope id: a
        progress event re-sent by a re-run iteration is a new envelope) is skipped."""
        if envelope.type != TaskProgress.event_type or not envelope.session_id:
            return
        history = self._sessions.get(envelope.session_id)
        # Most records seen twice are this replica's own, echoed by the sink and then read back
        # from the topic: skipped before their payload is parsed a second time.
        if history is not None and envelope.id in history.ids:
            return
        try:
            progress = envelope.parse(TaskProgress)
        except (ValidationError, ValueError):
            return
        if history is None:
            history = self._sessions[envelope.session_id] = _History()
            self._evict()
        history.ids.add(envelope.id)
        self._sessions.move_to_end(envelope.session_id)
        event = RecordedEvent(
            envelope.session_id,
            str(progress.kind),
            progress.iteration,
            dict(progress.detail),
            envelope.time,
            event_id=envelope.id,
        )
        history.events.append(event)
        # A resumed redelivery emits events again after an end: the session is open again.
        history.ended = event.kind in END_KINDS
        for queue in history.watchers:
            queue.put_nowait(event)
            if history.ended:
                queue.put_nowait(None)
        if history.ended:
            history.watchers.clear()

    def watch(
        self, session_id: str, after_event_id: str = "", finished: bool = False
    ) -> AsyncIterator[RecordedEvent]:
        """The events held so far (only those after ``after_event_id`` when it is one of
        them), then live ones until the session's last event. ``finished``: the index says
        the session ended, so nothing more is waited for even without its last event (its
        events were forgotten, or predate the topic's retention)."""
        history = self._sessions.get(session_id)
        if history is None:
            history = _History(ended=finished)
            if not finished:
                self._sessions[session_id] = history
                self._evict()
        backlog = list(history.events)
        ids = [e.event_id for e in backlog]
        if after_event_id in ids:
            backlog = backlog[ids.index(after_event_id) + 1 :]
        queue: asyncio.Queue[RecordedEvent | None] | None = None
        if not history.ended and not finished:
            queue = asyncio.Queue()
            history.watchers.append(queue)
        return follow_events(history.watchers, backlog, queue)

    async def _apply(self, envelope: Envelope) -> None:
        self.apply(envelope)

    def _evict(self) -> None:
        """Ended sessions first (oldest first), then the least recently active, never one
        that is being watched."""
        while len(self._sessions) > self._capacity:
            victim = next((sid for sid, h in self._sessions.items() if h.ended), None)
            if victim is None:
                victim = next((sid for sid, h in self._sessions.items() if not h.watchers), None)
            if victim is None:
                return
            del self._sessions[victim]
