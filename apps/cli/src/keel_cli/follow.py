"""Follow one session's progress and result on Kafka, without joining a consumer group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from keel_contracts.events import Envelope
from keel_contracts.topics import RESULTS, TASK_EVENTS
from keel_core.bus.follower import TopicFollower
from keel_core.settings import KafkaSettings

Start = Literal["beginning", "end"]


class SessionFollower:
    """Reads ``keel.task-events`` and ``keel.results``; open it *before* submitting a task with
    ``start="end"`` so nothing is missed, or with ``start="beginning"`` to replay a session."""

    def __init__(self, settings: KafkaSettings, start: Start = "end") -> None:
        self._start = start
        self._follower = TopicFollower(settings, [TASK_EVENTS, RESULTS], "cli")

    async def __aenter__(self) -> SessionFollower:
        try:
            if self._start == "end":
                await self._follower.start_at_end()
            else:
                await self._follower.start_at_beginning()
        except BaseException:
            await self._follower.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._follower.stop()

    async def poll(self) -> list[tuple[str, Envelope]]:
        """One fetch: decodable envelopes with their topic, progress before results."""
        found = await self._follower.poll(timeout_ms=200)
        return sorted(found, key=lambda pair: pair[0] == RESULTS)

    async def stream(self) -> AsyncIterator[tuple[str, Envelope]]:
        """Every decodable envelope on both topics, with the topic it came from."""
        while True:
            for pair in await self.poll():
                yield pair

    async def events(self, session_id: str) -> AsyncIterator[Envelope]:
        """Yield the session's envelopes in order, its result last.

        The agent loop flushes a session's progress before publishing its result, but the two
        topics are fetched independently: after the result, poll until no more progress of
        the session arrives, then yield the result.
        """
        result: Envelope | None = None
        while True:
            mine = [(t, e) for t, e in await self.poll() if e.session_id == session_id]
            for topic, envelope in mine:
                if topic == RESULTS:
                    result = envelope
                else:
                    yield envelope
            if result is not None and all(topic == RESULTS for topic, _ in mine):
                yield result
                return
