"""Read one session's record from Kafka, without joining a consumer group.

A session's events and its task are keyed by its id, so only the partition that key hashes
to is read; the tool ledger is keyed by idempotency key (``session:iteration:index``) and
spread over every partition of the compacted ``keel.tool-results``, so it is read whole.

The consumers keep the client ids they had when this lived in the ``keel`` command
(``<prefix>-cli``, ``<prefix>-cli-replay``): the command is still the one reading.
"""

from __future__ import annotations

from keel_agent_loop.replay.recording import NotReplayable, Recording, build_recording
from keel_contracts.events import Envelope, TaskProgress, TaskSubmitted, ToolResultRecorded
from keel_contracts.topics import SUBTASKS, TASK_EVENTS, TASKS, TOOL_RESULTS
from keel_core.bus import reader
from keel_core.bus.reader import Record, read_topic
from keel_core.settings import KafkaSettings

CLIENT = "cli"


async def load_recording(settings: KafkaSettings, session_id: str) -> Recording:
    """Raises ``NotReplayable`` when the session's events are not (or no longer) there."""
    events = await read_key(settings, TASK_EVENTS, session_id)
    progress = [e.parse(TaskProgress) for e in events if e.type == TaskProgress.event_type]
    if not progress:
        raise NotReplayable(f"no events of session {session_id} on {TASK_EVENTS}")
    task: TaskSubmitted | None = None
    for topic in (TASKS, SUBTASKS):
        for envelope in await read_key(settings, topic, session_id):
            if envelope.type == TaskSubmitted.event_type:
                task = envelope.parse(TaskSubmitted)
    return build_recording(session_id, task, progress, await read_ledger(settings, session_id))


async def read_ledger(settings: KafkaSettings, session_id: str) -> dict[str, ToolResultRecorded]:
    prefix = f"{session_id}:".encode()
    ledger: dict[str, ToolResultRecorded] = {}
    for record in await read_topic(settings, TOOL_RESULTS, CLIENT):
        if record.key is None or not record.key.startswith(prefix):
            continue
        envelope = _envelope(record)
        if envelope is not None and envelope.type == ToolResultRecorded.event_type:
            ledger[record.key.decode()] = envelope.parse(ToolResultRecorded)
    return ledger


async def read_key(settings: KafkaSettings, topic: str, key: str) -> list[Envelope]:
    """The decodable envelopes of ``key`` on ``topic`` as it stands now, in order."""
    records = await reader.read_key(settings, topic, key, f"{CLIENT}-replay")
    return [e for e in map(_envelope, records) if e is not None]


def _envelope(record: Record) -> Envelope | None:
    try:
        return Envelope.from_bytes(record.value or b"")
    except ValueError:
        return None
