"""``keel cancel <session>`` (``AgentService.Cancel``), ``keel result <session>``
(``AgentService.Get``) and ``keel watch <session> --after <event id>``
(``AgentService.StreamEvents``): any agent-loop replica answers them."""

from __future__ import annotations

import asyncio
import sys

from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.errors import NotFound


async def cancel_session(target: str, session_id: str, reason: str, timeout_s: float) -> int:
    async with open_channel(target) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=timeout_s))
        accepted = await agent.cancel(session_id, reason)
    print(f"cancel {'accepted' if accepted else 'not accepted'}: {session_id}")
    return 0 if accepted else 1


async def show_result(target: str, session_id: str, timeout_s: float = 10.0) -> int:
    """The session's outcome as ``AgentService.Get`` answers it: any replica answers from its
    index of ``keel.sessions``, so nothing is read from ``keel.results``."""
    async with open_channel(target) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=timeout_s))
        try:
            view = await agent.get(session_id)
        except NotFound:
            view = None
    if view is None or view.status in ("pending", "running"):
        print(f"no result for session {session_id} (yet)", file=sys.stderr)
        return 1
    if view.status == "completed":
        print(f"answer: {view.answer}")
        return 0
    print(f"failed ({view.status}): {view.error}")
    return 1


async def watch_after(target: str, session_id: str, after_event_id: str, timeout_s: float) -> int:
    """``keel watch SESSION --after EVENT_ID``: the session's events after that one (from any
    replica, ``AgentService.StreamEvents``), each with its id to resume after, then its answer."""

    async def stream(agent: AgentClient) -> None:
        async for event in agent.stream_events(session_id, after_event_id=after_event_id):
            print(f"{event.event_id}  [{event.iteration}] {event.type} {event.detail_json}")

    async with open_channel(target) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=timeout_s))
        try:
            await asyncio.wait_for(stream(agent), timeout_s)
        except TimeoutError:
            print(f"  (not finished after {timeout_s:.0f}s)")
            return 1
    return await show_result(target, session_id)
