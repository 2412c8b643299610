"""Checkpoints stay under the producer's record limit whatever the history's size: a large
state is written in pieces before the head that names them, read back whole by a fresh
process, and its superseded or finished pieces are tombstoned. The in-memory bus refuses a
record over the limit as aiokafka does (``keel_core.testing.MAX_RECORD_BYTES``)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from keel_agent_loop.adapters.checkpoints import FinishedSweeper, TableCheckpoints
from keel_agent_loop.adapters.chunks import CheckpointChunk, manifest_of
from keel_agent_loop.domain.models import AgentState, FinishedSession
from keel_contracts.chat import ChatMessage
from keel_contracts.events import Envelope, SessionCheckpoint, TaskCompleted
from keel_contracts.topics import CHECKPOINTS
from keel_core.testing import MAX_RECORD_BYTES, FakeClock, InMemoryBus, InMemoryTable

MB = 1024 * 1024
RETENTION_S = 3600.0


def tool_output(rng: random.Random, size: int) -> str:
    """Text that compresses about as badly as real tool output at its worst (hex noise)."""
    return rng.randbytes(size // 2).hex()


def long_session(session_id: str, history_bytes: int = 5 * MB, seed: int = 7) -> AgentState:
    rng = random.Random(seed)
    state = AgentState(session_id=session_id, goal="read every log file")
    state.move("planning")
    state.messages = [ChatMessage(role="user", content="read every log file")]
    while sum(len(m.content) for m in state.messages) < history_bytes:
        state.messages.append(ChatMessage(role="tool", content=tool_output(rng, 200 * 1024)))
    state.iteration = len(state.messages)
    return state


async def started(bus: InMemoryBus) -> tuple[TableCheckpoints, InMemoryTable]:
    table = InMemoryTable(bus, CHECKPOINTS, "agent-loop")
    await table.start()
    return TableCheckpoints(table), table


def chunk_keys(table: InMemoryTable) -> set[str]:
    return {
        key
        for key in table.keys()
        if (envelope := table.get(key)) is not None and envelope.type == CheckpointChunk.event_type
    }


def named_pieces(table: InMemoryTable, session_id: str) -> set[str]:
    head = table.get(session_id)
    assert head is not None
    manifest = manifest_of(head.data["state"])
    assert manifest is not None
    return set(manifest.keys)


@pytest.mark.parametrize("durable", [True, False])
async def test_a_5_mb_history_round_trips_through_a_fresh_process(durable: bool) -> None:
    bus = InMemoryBus()
    checkpoints, _ = await started(bus)
    state = long_session("s1")
    assert len(state.model_dump_json()) > 5 * MB

    await checkpoints.save(state, durable=durable)

    fresh, table = await started(bus)
    assert fresh.get("s1") == state
    assert max(len(r.value or b"") for r in bus.records(CHECKPOINTS)) < MAX_RECORD_BYTES
    head = table.get("s1")
    assert head is not None
    assert head.type == SessionCheckpoint.event_type
    assert (head.data["status"], head.data["iteration"]) == ("planning", state.iteration)
    # The head comes after every piece it names: a reader that has the head has them.
    offsets = {r.key.decode(): r.offset for r in bus.records(CHECKPOINTS) if r.key}
    assert all(offsets[key] < offsets["s1"] for key in named_pieces(table, "s1"))


async def test_a_small_state_stays_one_record() -> None:
    bus = InMemoryBus()
    checkpoints, table = await started(bus)
    state = long_session("small", history_bytes=10_000)

    await checkpoints.save(state)
    await checkpoints.save(state, durable=False)

    assert [r.key for r in bus.records(CHECKPOINTS)] == [b"small", b"small"]
    head = table.get("small")
    assert head is not None
    assert head.data["state"] == state.model_dump(mode="json")


async def test_a_new_step_writes_only_the_changed_pieces_and_tombstones_the_superseded() -> None:
    bus = InMemoryBus()
    checkpoints, table = await started(bus)
    state = long_session("s1")
    await checkpoints.save(state)
    before = named_pieces(table, "s1")
    written = len(bus.records(CHECKPOINTS))

    state.messages.append(ChatMessage(role="assistant", content="one more step"))
    state.iteration += 1
    await checkpoints.save(state, durable=False)

    after = named_pieces(table, "s1")
    new = bus.records(CHECKPOINTS)[written:]
    writes = [r.key.decode() for r in new if r.key and r.value is not None]
    tombstones = {r.key.decode() for r in new if r.key and r.value is None}
    assert len(before & after) >= len(before) - 1  # only the tail piece changed
    assert sorted(writes[:-1]) == sorted(after - before)
    assert writes[-1] == "s1"  # the head after its pieces
    assert tombstones == before - after
    fresh, fresh_table = await started(bus)
    assert fresh.get("s1") == state
    assert chunk_keys(fresh_table) == after


async def test_a_session_that_shrinks_goes_back_to_one_record_and_drops_its_pieces() -> None:
    bus = InMemoryBus()
    checkpoints, table = await started(bus)
    state = long_session("s1")
    await checkpoints.save(state)
    state.messages = state.messages[:1]  # e.g. the history summarised

    await checkpoints.save(state, durable=False)

    fresh, fresh_table = await started(bus)
    assert fresh.get("s1") == state
    assert chunk_keys(fresh_table) == set()


async def test_a_head_whose_pieces_are_missing_is_unreadable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InMemoryBus()
    checkpoints, table = await started(bus)
    await checkpoints.save(long_session("s1"))
    await table.delete(sorted(named_pieces(table, "s1"))[0])

    with caplog.at_level(logging.WARNING):
        assert (await started(bus))[0].get("s1") is None
    assert "ignoring unreadable checkpoint of s1" in caplog.text


def finished(state: AgentState, clock: FakeClock) -> FinishedSession:
    state.complete("done")
    result = Envelope.wrap(
        TaskCompleted(answer="done", iterations=state.iteration),
        source="agent-loop",
        session_id=state.session_id,
    ).model_copy(update={"time": clock.utcnow()})
    return FinishedSession(result=result, state=state)


async def test_a_finished_long_session_keeps_its_state_until_swept_with_every_piece() -> None:
    bus = InMemoryBus()
    clock = FakeClock()
    checkpoints, table = await started(bus)
    state = long_session("s1")
    await checkpoints.save(state)
    marker = finished(state, clock)

    await checkpoints.save_finished(marker)
    assert (await started(bus))[0].finished("s1") == marker
    done = marker.model_copy(update={"state": None, "done": True})
    await checkpoints.save_finished(done, durable=False)
    assert (await started(bus))[0].finished("s1") == done
    assert chunk_keys(table)  # kept while the marker is: a lost "done" write still needs them

    sweeper = FinishedSweeper(checkpoints, RETENTION_S, interval_s=60, now=clock.utcnow)
    clock.advance(RETENTION_S + 1)
    assert await sweeper.sweep() == ["s1"]
    _, fresh_table = await started(bus)
    assert fresh_table.keys() == []


async def test_a_marker_whose_pieces_are_gone_still_gives_its_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InMemoryBus()
    clock = FakeClock()
    checkpoints, table = await started(bus)
    marker = finished(long_session("s1"), clock)
    await checkpoints.save_finished(marker)
    await table.delete(sorted(named_pieces(table, "s1"))[0])

    read = (await started(bus))[0].finished("s1")

    assert read == marker.model_copy(update={"state": None})
    assert "end marker of s1: its state is gone" in caplog.text


async def test_pieces_no_head_names_are_swept_once_past_the_grace_period() -> None:
    """A crash between the pieces and their head leaves pieces nobody names."""
    bus = InMemoryBus()
    crashed = InMemoryTable(bus, CHECKPOINTS, "agent-loop")
    await crashed.start()
    await crashed.put("s1:chunk:abc", CheckpointChunk(sha256="abc", data=""), session_id="s1")
    checkpoints, table = await started(bus)
    await checkpoints.save(long_session("s2"))
    live = chunk_keys(table) - {"s1:chunk:abc"}

    now = FinishedSweeper(checkpoints, RETENTION_S, interval_s=60)
    assert await now.sweep() == []
    assert "s1:chunk:abc" in chunk_keys(table)  # young: its head may be on its way

    def later() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=RETENTION_S + 1)

    assert await FinishedSweeper(checkpoints, RETENTION_S, 60, now=later).sweep() == []
    assert chunk_keys(table) == live  # the live session's pieces are named: kept
    assert (await started(bus))[0].get("s2") == long_session("s2")
    assert checkpoints.keys() == ["s2"]
