"""A sleep the test steps by hand, for the ledger's background retries: the test knows when a
retry is waiting (and how long it asked to wait) and lets it go on, so nothing sleeps."""

from __future__ import annotations

import asyncio


class SteppedSleep:
    """Pass as ``sleep=``: each ``await sleep(delay)`` records ``delay`` and blocks until
    ``step()``; ``await waiting()`` returns once a sleeper is blocked."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._go = asyncio.Event()
        self._blocked = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self._blocked.set()
        await self._go.wait()
        self._go.clear()

    async def waiting(self) -> float:
        """The delay the blocked sleeper asked for."""
        await self._blocked.wait()
        return self.delays[-1]

    def step(self) -> None:
        """Let the blocked sleeper go on."""
        self._blocked.clear()
        self._go.set()
