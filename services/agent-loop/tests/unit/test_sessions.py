"""The in-process session store: status for Get, replay and live fan-out for StreamEvents."""

from __future__ import annotations

import asyncio

import pytest

from keel_agent_loop.domain import AgentState, RequestContext, SessionStore
from keel_contracts.errors import NotFound
from keel_contracts.events import TaskCompleted, TaskProgress

CTX = RequestContext(session_id="s1")


def state(session_id: str = "s1") -> AgentState:
    return AgentState(session_id=session_id, goal="g", iteration=1, status="planning")


async def test_watch_replays_then_follows_until_finished() -> None:
    store = SessionStore()
    store.started(state())
    await store.progress(CTX, TaskProgress(kind="started", iteration=0))
    events = store.watch("s1")
    seen: list[str] = []

    async def collect() -> None:
        async for event in events:
            seen.append(event.kind)

    watcher = asyncio.create_task(collect())
    await asyncio.sleep(0)
    await store.progress(CTX, TaskProgress(kind="thought", iteration=1))
    await store.progress(CTX, TaskProgress(kind="completed", iteration=1))
    done = state()
    done.complete("x")
    store.finished(done, TaskCompleted(answer="x", iterations=1))
    await asyncio.wait_for(watcher, 1)
    assert seen == ["started", "thought", "completed"]
    assert store.get("s1") is not None
    assert store.get("s1").watchers == []  # type: ignore[union-attr]


async def test_finished_sessions_replay_and_end() -> None:
    store = SessionStore()
    await store.progress(CTX, TaskProgress(kind="completed", iteration=1))
    done = state()
    done.complete("x")
    store.finished(done, TaskCompleted(answer="x", iterations=1))
    kinds = [e.kind async for e in store.watch("s1")]
    assert kinds == ["completed"]


async def test_completed_is_never_visible_without_its_answer() -> None:
    store = SessionStore()
    store.started(state())
    state_event = {"from": "planning", "to": "completed"}
    await store.progress(CTX, TaskProgress(kind="state", iteration=2, detail=state_event))
    record = store.get("s1")
    assert record is not None
    assert (record.status, record.answer) == ("planning", "")
    done = state()
    done.complete("42")
    store.finished(done, TaskCompleted(answer="42", iterations=2))
    assert (record.status, record.answer) == ("completed", "42")


def test_unknown_session_is_not_found_at_once() -> None:
    with pytest.raises(NotFound):
        SessionStore().watch("nope")


def test_capacity_forgets_oldest_finished_first() -> None:
    store = SessionStore(capacity=2)
    store.started(state("running"))
    for sid in ("old", "new"):
        done = state(sid)
        done.complete("x")
        store.finished(done, TaskCompleted(answer="x", iterations=1))
    assert store.get("old") is None
    assert store.get("new") is not None
    assert store.get("running") is not None


def test_discard_only_forgets_pending() -> None:
    store = SessionStore()
    store.submitted("p")
    store.started(state("r"))
    store.discard("p")
    store.discard("r")
    assert store.get("p") is None
    assert store.get("r") is not None
