"""Print a session's progress as it happens and return its outcome."""

from __future__ import annotations

import asyncio

from keel_cli.follow import SessionFollower
from keel_cli.render import describe
from keel_core.events import Envelope, TaskCompleted


async def print_session(
    follower: SessionFollower, session_id: str, timeout_s: float
) -> Envelope | None:
    """Print each event; the final envelope (completed or failed), or None on time-out."""

    async def follow() -> Envelope | None:
        last: Envelope | None = None
        async for envelope in follower.events(session_id):
            print(describe(envelope), flush=True)
            last = envelope
        return last

    try:
        return await asyncio.wait_for(follow(), timeout_s)
    except TimeoutError:
        print(f"  (no result after {timeout_s:.0f}s; `keel watch {session_id}` to keep following)")
        return None


def answer_of(result: Envelope | None) -> str | None:
    if result is not None and result.type == TaskCompleted.event_type:
        return result.parse(TaskCompleted).answer
    return None
