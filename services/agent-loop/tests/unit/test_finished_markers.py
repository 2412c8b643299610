"""End markers over the checkpoint table: read back as written, and swept after their grace
period without touching live checkpoints or the plans' keys."""

from __future__ import annotations

from keel_agent_loop.adapters.checkpoints import FinishedSweeper, TableCheckpoints
from keel_agent_loop.adapters.session_index import SessionIndex
from keel_agent_loop.domain.models import AgentState, FinishedSession
from keel_contracts.events import Envelope, PlanCheckpoint, TaskCompleted
from keel_contracts.topics import CHECKPOINTS, SESSIONS
from keel_core.testing import FakeClock, InMemoryBus, InMemoryTable

RETENTION_S = 3600.0


def finished(session_id: str, clock: FakeClock) -> FinishedSession:
    state = AgentState(session_id=session_id, goal="g", status="planning")
    state.complete("done")
    result = Envelope.wrap(
        TaskCompleted(answer="done", iterations=1), source="agent-loop", session_id=session_id
    ).model_copy(update={"time": clock.utcnow()})
    return FinishedSession(result=result, state=state)


async def started_table(bus: InMemoryBus) -> TableCheckpoints:
    table = InMemoryTable(bus, CHECKPOINTS, "agent-loop")
    await table.start()
    return TableCheckpoints(table)


async def test_a_marker_reads_back_in_a_fresh_process_with_its_envelope() -> None:
    bus = InMemoryBus()
    clock = FakeClock()
    marker = finished("s1", clock)
    await (await started_table(bus)).save_finished(marker)

    fresh = await started_table(bus)
    assert fresh.finished("s1") == marker
    assert fresh.get("s1") is None  # no live checkpoint: nothing to resume
    done = marker.model_copy(update={"state": None, "done": True})
    await fresh.save_finished(done)
    assert (await started_table(bus)).finished("s1") == done


async def test_markers_past_their_grace_period_are_tombstoned_and_nothing_else() -> None:
    bus = InMemoryBus()
    clock = FakeClock()
    checkpoints = await started_table(bus)
    await checkpoints.save_finished(finished("old", clock))
    clock.advance(RETENTION_S / 2)
    await checkpoints.save_finished(finished("young", clock))
    live = AgentState(session_id="live", goal="g")
    await checkpoints.save(live)
    plan = InMemoryTable(bus, CHECKPOINTS, "agent-loop-plans")
    await plan.put("plan:p1", PlanCheckpoint(status="running", state={}))
    sweeper = FinishedSweeper(checkpoints, RETENTION_S, interval_s=60, now=clock.utcnow)

    assert await sweeper.sweep() == []
    clock.advance(RETENTION_S / 2 + 1)
    assert await sweeper.sweep() == ["old"]

    fresh = await started_table(bus)
    assert fresh.finished("old") is None
    assert fresh.finished("young") is not None
    assert fresh.get("live") == live
    assert "plan:p1" in fresh.keys()
    clock.advance(RETENTION_S)
    assert await sweeper.sweep() == ["young"]


async def test_a_swept_marker_takes_the_sessions_index_entry_with_it() -> None:
    bus = InMemoryBus()
    clock = FakeClock()
    checkpoints = await started_table(bus)
    sessions = InMemoryTable(bus, SESSIONS, "agent-loop")
    await sessions.start()
    index = SessionIndex(sessions)
    await index.submitted("old", "", "acme")
    await index.submitted("young", "", "acme")
    await checkpoints.save_finished(finished("old", clock))
    clock.advance(RETENTION_S / 2)
    await checkpoints.save_finished(finished("young", clock))
    sweeper = FinishedSweeper(
        checkpoints, RETENTION_S, interval_s=60, now=clock.utcnow, on_expired=index.forget
    )
    clock.advance(RETENTION_S / 2 + 1)
    assert await sweeper.sweep() == ["old"]
    other = InMemoryTable(bus, SESSIONS, "agent-loop")  # another replica, started afresh
    await other.start()
    assert SessionIndex(other).get("old") is None
    assert SessionIndex(other).get("young") is not None
