"""Housekeeping that runs every few seconds or minutes in the background: sweeps of expired
state, deadline checks. One implementation of the loop, its start and its stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``work`` every ``interval_s`` (the first run after one interval, unless
    ``at_start``). A run that raises is logged and the next one happens on time: housekeeping
    never stops the service. The interval is a timer, not synchronisation."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[object]],
        *,
        at_start: bool = False,
    ) -> None:
        self.name = name
        self._interval_s = interval_s
        self._work = work
        self._at_start = at_start
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if not self._at_start:
            await asyncio.sleep(self._interval_s)
        while True:
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self.name, self._interval_s)
            await asyncio.sleep(self._interval_s)
