"""The session index (``keel.sessions``) and the event history (``keel.task-events``) that let
any agent-loop replica answer for any session (ADR 0013)."""

from __future__ import annotations

import asyncio

import pytest

from keel_agent_loop.adapters.event_history import EventHistory
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.session_index import SessionIndex
from keel_agent_loop.domain import AgentState, RequestContext, SessionStore
from keel_agent_loop.domain.models import FinishedSession
from keel_agent_loop.domain.sessions import RecordedEvent
from keel_agent_loop.testing import InMemoryCheckpoints
from keel_agent_loop.usecases import FrontDoor
from keel_contracts.errors import NotFound
from keel_contracts.events import Envelope, TaskCompleted, TaskProgress
from keel_contracts.topics import SESSIONS, TASK_EVENTS
from keel_core.testing import InMemoryBus
from keel_core.testing.bus import BusPublisher, InMemoryFollower, InMemoryTable

TRACE = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


def state(session_id: str = "s1", status: str = "planning") -> AgentState:
    return AgentState.model_validate(
        {"session_id": session_id, "goal": "g", "iteration": 1, "status": status, "tenant": "acme"}
    )


async def started_index(bus: InMemoryBus) -> SessionIndex:
    table = InMemoryTable(bus, SESSIONS, "agent-loop")
    await table.start()
    index = SessionIndex(table)
    await index.start()
    return index


async def test_the_index_folds_every_change_and_another_replica_reads_it() -> None:
    bus = InMemoryBus()
    runner = await started_index(bus)
    other = await started_index(bus)  # another replica, following the same topic
    store = SessionStore(listener=runner)

    await runner.submitted("s1", TRACE, "acme")
    accepted = other.get("s1")
    assert accepted is not None
    assert (accepted.status, accepted.tenant, accepted.trace) == ("idle", "acme", TRACE)

    store.started(state())
    ctx = RequestContext(session_id="s1")
    detail = {"from": "planning", "to": "executing_tool"}
    await store.progress(ctx, TaskProgress(kind="state", iteration=1, detail=detail))
    await runner.flush()
    running = other.get("s1")
    assert running is not None
    assert (running.status, running.tenant) == ("executing_tool", "acme")

    done = state()
    done.complete("four")
    store.finished(done, TaskCompleted(answer="four", iterations=1))
    await runner.flush()
    finished = other.get("s1")
    assert finished is not None
    assert (finished.status, finished.answer, finished.finished) == ("completed", "four", True)
    assert finished.result == TaskCompleted(answer="four", iterations=1)
    # A restarted replica loads the topic: the finished session is still answered.
    assert (await started_index(bus)).get("s1") == finished
    await runner.stop()
    await other.stop()


def progress(session_id: str, kind: str, iteration: int = 1) -> Envelope:
    return Envelope.wrap(
        TaskProgress(kind=kind, iteration=iteration),  # type: ignore[arg-type]
        source="agent-loop",
        session_id=session_id,
    )


async def collect(events: object) -> list[RecordedEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]


async def test_the_history_resumes_after_an_event_id_then_follows_live_until_the_end() -> None:
    bus = InMemoryBus()
    history = EventHistory(InMemoryFollower(bus, TASK_EVENTS))
    first = [progress("s1", "started", 0), progress("s1", "thought"), progress("s1", "tool_call")]
    publisher = BusPublisher(bus)
    for envelope in first:
        await publisher.publish(TASK_EVENTS, envelope, key="s1")
    await history.start()

    # Both watchers hold their backlog once watch() returns; what follows is live.
    resumed = asyncio.create_task(collect(history.watch("s1", after_event_id=first[0].id)))
    whole = asyncio.create_task(collect(history.watch("s1")))
    last = [progress("s1", "tool_result"), progress("s1", "completed")]
    for envelope in last:
        await publisher.publish(TASK_EVENTS, envelope, key="s1")

    after_first = await asyncio.wait_for(resumed, 1)
    everything = await asyncio.wait_for(whole, 1)
    assert [e.event_id for e in after_first] == [e.id for e in first[1:] + last]
    assert [e.event_id for e in everything] == [e.id for e in first + last]
    assert [e.kind for e in everything] == [
        "started", "thought", "tool_call", "tool_result", "completed"
    ]  # fmt: skip
    # Ended: a later watcher gets the backlog and the stream ends by itself.
    replay = await asyncio.wait_for(collect(history.watch("s1", after_event_id=last[0].id)), 1)
    assert [e.kind for e in replay] == ["completed"]
    await history.stop()


async def test_a_record_seen_twice_is_kept_once() -> None:
    history = EventHistory(InMemoryFollower(InMemoryBus(), TASK_EVENTS))
    envelope = progress("s1", "completed")
    history.apply(envelope)
    history.apply(envelope)
    assert [e.event_id for e in await collect(history.watch("s1"))] == [envelope.id]


def test_an_echoed_record_read_back_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink echoes this replica's events and the follower reads them back: the second
    sighting is dropped by its id before its payload is parsed."""
    parsed: list[str] = []
    parse = Envelope.parse

    def counting(self: Envelope, model: type[TaskProgress]) -> TaskProgress:
        parsed.append(self.id)
        return parse(self, model)

    monkeypatch.setattr(Envelope, "parse", counting)
    history = EventHistory(InMemoryFollower(InMemoryBus(), TASK_EVENTS))
    envelope = progress("s1", "thought")
    history.apply(envelope)
    history.apply(envelope)
    assert parsed == [envelope.id]


async def test_the_history_forgets_ended_sessions_first_beyond_its_capacity() -> None:
    history = EventHistory(InMemoryFollower(InMemoryBus(), TASK_EVENTS), capacity=2)
    history.apply(progress("old", "completed"))
    history.apply(progress("running", "started"))
    history.apply(progress("new", "completed"))
    assert not history.known("old")
    assert history.known("running")
    assert history.known("new")
    # A forgotten finished session's stream ends at once rather than waiting forever.
    assert await asyncio.wait_for(collect(history.watch("old", finished=True)), 1) == []


async def test_any_replica_answers_get_and_cancel_but_never_for_another_tenant() -> None:
    """Replica B never saw the session: it answers from the index A wrote."""
    bus = InMemoryBus()
    index_a, index_b = await started_index(bus), await started_index(bus)
    store_a = SessionStore(listener=index_a)
    store_a.started(state("s1", "waiting_for_approval"))
    await index_a.flush()
    b = FrontDoor(SessionStore(), BusPublisher(bus), directory=index_b)

    assert b.get("s1", tenant="acme").status == "waiting_for_approval"
    assert b.get("s1").tenant == "acme"
    with pytest.raises(NotFound):
        b.get("s1", tenant="globex")
    with pytest.raises(NotFound):
        await b.cancel("s1", "no", tenant="globex")
    assert await b.cancel("s1", "enough", tenant="acme")
    assert [e.session_id for e in bus.envelopes("keel.tasks")] == ["s1"]
    await index_a.stop()
    await index_b.stop()


async def test_an_end_marker_answers_when_the_index_missed_the_finish() -> None:
    """A crash between the end marker and the finish's summary: the index still says running,
    the marker in keel.checkpoints holds the outcome, and Get answers it."""
    bus = InMemoryBus()
    index = await started_index(bus)
    SessionStore(listener=index).started(state("s1", "executing_tool"))
    await index.flush()
    checkpoints = InMemoryCheckpoints()
    done = state()
    done.complete("four")
    result = Envelope.wrap(TaskCompleted(answer="four", iterations=1), source="t", session_id="s1")
    await checkpoints.save_finished(FinishedSession(result=result, state=done))
    other = FrontDoor(SessionStore(), BusPublisher(bus), checkpoints=checkpoints, directory=index)

    got = other.get("s1", tenant="acme")
    assert (got.status, got.answer, got.iteration, got.tenant) == ("completed", "four", 1, "acme")
    await index.stop()


async def test_the_runner_answers_its_end_marker_before_it_records_the_finish() -> None:
    """The runner writes the end marker and publishes the result, then stores the episode and
    only then records the finish: meanwhile (a memory replica dying can make it long) its own
    Get must answer the outcome, not "running" (found by the cluster test)."""
    bus = InMemoryBus()
    index = await started_index(bus)
    store = SessionStore(listener=index)
    store.started(state("s1", "executing_tool"))
    await index.flush()
    checkpoints = InMemoryCheckpoints()
    done = state()
    done.complete("four")
    result = Envelope.wrap(TaskCompleted(answer="four", iterations=1), source="t", session_id="s1")
    await checkpoints.save_finished(FinishedSession(result=result, state=done))
    runner = FrontDoor(store, BusPublisher(bus), checkpoints=checkpoints, directory=index)

    got = runner.get("s1", tenant="acme")
    assert (got.status, got.answer, got.tenant) == ("completed", "four", "acme")
    await index.stop()


async def test_a_change_without_a_tenant_keeps_the_tenant_the_index_knows() -> None:
    bus = InMemoryBus()
    index = await started_index(bus)
    await index.submitted("s1", TRACE, "acme")
    store = SessionStore(listener=index)
    detail = {"from": "idle", "to": "planning"}
    ctx = RequestContext(session_id="s1")
    await store.progress(ctx, TaskProgress(kind="state", iteration=0, detail=detail))
    await index.flush()
    known = index.get("s1")
    assert known is not None
    assert (known.status, known.tenant) == ("planning", "acme")
    await index.stop()


def summaries(bus: InMemoryBus) -> list[str]:
    """The statuses written to keel.sessions for s1, in order."""
    return [
        str(Envelope.from_bytes(r.value).data["status"])
        for r in bus.records(SESSIONS)
        if r.value is not None and r.key == b"s1"
    ]


async def test_a_steps_status_changes_are_written_once_with_the_latest() -> None:
    bus = InMemoryBus()
    table = InMemoryTable(bus, SESSIONS, "agent-loop")
    await table.start()
    index = SessionIndex(table, coalesce_s=0.05)
    await index.start()
    running = state()
    for status in ("planning", "executing_tool", "processing_result", "planning"):
        index.changed(SessionStore().started(running.model_copy(update={"status": status})))
    await asyncio.sleep(0.2)
    assert summaries(bus) == ["planning"]  # one write, the newest, not four
    await index.stop()


async def test_a_status_outside_a_step_is_written_at_once_and_carries_the_latest() -> None:
    bus = InMemoryBus()
    table = InMemoryTable(bus, SESSIONS, "agent-loop")
    await table.start()
    index = SessionIndex(table, coalesce_s=60.0)  # nothing in a step would be written soon
    await index.start()
    index.changed(SessionStore().started(state(status="executing_tool")))
    index.changed(SessionStore().started(state(status="waiting_for_approval")))
    await asyncio.sleep(0.2)
    assert summaries(bus) == ["waiting_for_approval"]
    index.changed(SessionStore().started(state(status="processing_result")))
    await index.flush()  # a flush does not wait for the coalescing window either
    assert summaries(bus) == ["waiting_for_approval", "processing_result"]
    await index.stop()


async def test_this_replicas_own_events_reach_its_watchers_before_the_broker_returns_them() -> None:
    """The history's follower batches its fetches; the sink's echo is what keeps a watcher of
    a session run here live (the follower here never delivers anything)."""
    unread = InMemoryBus()
    history = EventHistory(InMemoryFollower(unread, TASK_EVENTS))
    await history.start()
    written = InMemoryBus()
    sink = KafkaEventSink(BusPublisher(written), echo=history.apply)
    ctx = RequestContext(session_id="s1")
    watching = asyncio.create_task(collect(history.watch("s1")))
    await sink.progress(ctx, TaskProgress(kind="thought", iteration=1, detail={}))
    await sink.progress(ctx, TaskProgress(kind="completed", iteration=1, detail={}))
    seen = await asyncio.wait_for(watching, 1)
    assert [e.kind for e in seen] == ["thought", "completed"]
    # The same records followed back later are not shown twice.
    for envelope in written.envelopes(TASK_EVENTS):
        history.apply(envelope)
    assert [e.event_id for e in await collect(history.watch("s1"))] == [
        e.id for e in written.envelopes(TASK_EVENTS)
    ]
    await history.stop()


async def test_the_last_event_waits_until_get_answers_the_session_finished() -> None:
    """The running replica emits ``completed`` before it writes the end marker; its own watchers
    see the event at once (the sink's echo), so a caller that stops at the last event and asks
    Get must find the session finished (the agents server does exactly that)."""
    history = EventHistory(InMemoryFollower(InMemoryBus(), TASK_EVENTS))
    await history.start()
    store = SessionStore()
    running = state("s1", "planning")
    store.started(running)
    door = FrontDoor(store, BusPublisher(InMemoryBus()), history=history)
    history.apply(progress("s1", "thought"))
    history.apply(progress("s1", "completed"))
    watching = asyncio.create_task(collect(door.watch("s1")))
    await asyncio.sleep(0.2)
    assert not watching.done()  # the last event is held: Get would still say "planning"
    done = running.model_copy(deep=True)
    done.complete("four")
    store.finished(done, TaskCompleted(answer="four", iterations=1))
    seen = await asyncio.wait_for(watching, 1)
    assert [e.kind for e in seen] == ["thought", "completed"]
    assert door.get("s1").status == "completed"
    await history.stop()
