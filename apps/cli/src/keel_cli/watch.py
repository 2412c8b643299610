"""Print a session's progress as it happens and return its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from keel_cli.follow import SessionFollower
from keel_cli.live import TICK_S, LiveDisplay
from keel_contracts.events import Envelope, TaskCompleted


async def print_session(
    follower: SessionFollower,
    session_id: str,
    timeout_s: float,
    display: LiveDisplay | None = None,
) -> Envelope | None:
    """Print each event (with a spinner on a terminal); the final envelope (completed or
    failed), or None on time-out."""
    display = display or LiveDisplay.for_stream(sys.stdout)

    async def follow() -> Envelope | None:
        last: Envelope | None = None
        async for envelope in follower.events(session_id):
            display.event(envelope)
            last = envelope
        return last

    spinner = asyncio.create_task(_spin(display)) if display.animate else None
    try:
        return await asyncio.wait_for(follow(), timeout_s)
    except TimeoutError:
        display.line(
            f"  (no result after {timeout_s:.0f}s; `keel watch {session_id}` to keep following)"
        )
        return None
    finally:
        if spinner is not None:
            spinner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spinner
        display.close()


async def _spin(display: LiveDisplay) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        display.tick()


def answer_of(result: Envelope | None) -> str | None:
    if result is not None and result.type == TaskCompleted.event_type:
        return result.parse(TaskCompleted).answer
    return None
