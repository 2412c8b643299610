"""``keel cancel <session>`` (``AgentService.Cancel``) and ``keel result <session>`` (the
session's final record on ``keel.results``, read from the beginning)."""

from __future__ import annotations

import sys

from keel_cli.ops_read import read_topic
from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.events import Envelope, TaskCompleted, TaskFailed
from keel_contracts.topics import RESULTS
from keel_core.settings import KafkaSettings


async def cancel_session(target: str, session_id: str, reason: str, timeout_s: float) -> int:
    async with open_channel(target) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=timeout_s))
        accepted = await agent.cancel(session_id, reason)
    print(f"cancel {'accepted' if accepted else 'not accepted'}: {session_id}")
    return 0 if accepted else 1


async def final_result(settings: KafkaSettings, session_id: str) -> Envelope | None:
    """The session's last decodable result; results are keyed by session, so look at the
    records with that key (and check the envelope's session too)."""
    found: Envelope | None = None
    for record in await read_topic(settings, RESULTS):
        if record.key not in (None, session_id.encode()):
            continue
        try:
            envelope = Envelope.from_bytes(record.value or b"")
        except ValueError:
            continue
        if envelope.session_id == session_id:
            found = envelope
    return found


async def show_result(settings: KafkaSettings, session_id: str) -> int:
    envelope = await final_result(settings, session_id)
    if envelope is None:
        print(f"no result for session {session_id} (yet)", file=sys.stderr)
        return 1
    if envelope.type == TaskCompleted.event_type:
        done = envelope.parse(TaskCompleted)
        print(f"answer: {done.answer}")
        return 0
    if envelope.type == TaskFailed.event_type:
        failed = envelope.parse(TaskFailed)
        print(f"failed ({failed.reason}): {failed.error}")
        return 1
    print(f"unexpected result type {envelope.type}", file=sys.stderr)
    return 1
