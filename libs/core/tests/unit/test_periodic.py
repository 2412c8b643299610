"""Background housekeeping keeps its rhythm: a run that fails is logged and the next happens."""

from __future__ import annotations

import asyncio

from keel_core.periodic import Periodic


async def test_a_failing_run_does_not_stop_the_next_and_stop_ends_it() -> None:
    runs: list[int] = []
    third = asyncio.Event()

    async def work() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("first pass fails")
        if len(runs) == 3:
            third.set()

    periodic = Periodic("test", 0.001, work, at_start=True)
    await periodic.start()
    await asyncio.wait_for(third.wait(), timeout=5)
    await periodic.stop()
    stopped_at = len(runs)
    await asyncio.sleep(0.01)
    assert runs[:3] == [0, 1, 2]
    assert len(runs) == stopped_at
