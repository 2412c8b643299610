"""Watch the sessions live while processes die: which ones progressed, when, and their results.

The live view only paces the run and times recovery; the verdicts are taken afterwards from the
topics themselves (``checks``), so an event this follower missed while the broker was down
changes a timing, never a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from keel_cli.follow import SessionFollower
from keel_contracts.events import Envelope, TaskProgress
from keel_contracts.topics import RESULTS
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)


class Observer:
    """Follows ``keel.task-events`` and ``keel.results`` in the background. A poll that fails
    (the broker was killed) opens a new follower at the end: what was written meanwhile is
    missed here and found later by the checks."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self.steps: Counter[str] = Counter()  # session id -> tool calls answered "ok"
        self.step_times: list[float] = []  # creation time (epoch s) of each "ok" tool result
        self.results: dict[str, Envelope] = {}
        self.reconnects = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        follower = SessionFollower(self._kafka, start="end")
        await follower.__aenter__()
        self._task = asyncio.create_task(self._follow(follower))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, follower: SessionFollower) -> None:
        try:
            while True:
                try:
                    found = await follower.poll()
                except Exception as exc:  # the broker went away: follow again from the end
                    log.warning("follower failed (%s); reopening", exc)
                    await follower.__aexit__()
                    follower = await self._reopen()
                    continue
                for topic, envelope in found:
                    self._record(topic, envelope)
                if found:
                    self._changed.set()
        finally:
            await follower.__aexit__()

    async def _reopen(self) -> SessionFollower:
        while True:
            self.reconnects += 1
            follower = SessionFollower(self._kafka, start="end")
            try:
                await follower.__aenter__()
                return follower
            except Exception as exc:
                log.warning("cannot follow yet (%s)", exc)
                await asyncio.sleep(1)

    def _record(self, topic: str, envelope: Envelope) -> None:
        if topic == RESULTS:
            self.results.setdefault(envelope.session_id, envelope)
            return
        if envelope.type != TaskProgress.event_type:
            return
        progress = envelope.parse(TaskProgress)
        if progress.kind == "tool_result" and progress.detail.get("status") == "ok":
            self.steps[envelope.session_id] += 1
            self.step_times.append(envelope.time.timestamp())

    def note_results(self, envelopes: list[Envelope]) -> None:
        """Results read straight from the topic (what the live view may have missed)."""
        for envelope in envelopes:
            self.results.setdefault(envelope.session_id, envelope)
        self._changed.set()

    async def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``done()`` holds, re-checked whenever something arrives; False when
        ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def progressed_after(self, moment: float) -> float | None:
        """The first "ok" tool result created after ``moment`` (epoch s), or None."""
        later = [t for t in self.step_times if t > moment]
        return min(later) if later else None
