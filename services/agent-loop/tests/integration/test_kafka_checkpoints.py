"""Checkpoints and the control follower on the real broker."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from keel_agent_loop.adapters.checkpoints import TableCheckpoints
from keel_agent_loop.adapters.control import ControlFollower
from keel_agent_loop.domain import AgentState, ChatMessage
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.models import FinishedSession
from keel_contracts.events import Envelope, TaskCancelRequested, TaskCompleted
from keel_contracts.topics import CONTROL, TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.follower import TopicFollower
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "test-agent-loop")
    await p.start()
    yield p
    await p.stop()


def parked(session_id: str) -> AgentState:
    state = AgentState(session_id=session_id, goal="email bob", token_budget=500)
    state.move("planning")
    state.messages = [ChatMessage(role="user", content="email bob")]
    state.iteration = 1
    state.move("executing_tool")
    state.move("waiting_for_approval")
    return state


async def test_checkpoints_survive_a_new_instance_and_tombstones_remove_them(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    topic = f"test.checkpoints.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, cleanup="compact", retention_ms=-1)])
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    first = CompactedTable(kafka, topic, producer, "agent-loop-a")
    await first.start()
    try:
        checkpoints = TableCheckpoints(first)
        await checkpoints.save(parked(session_id))
        assert checkpoints.get(session_id) == parked(session_id)
    finally:
        await first.stop()

    second = CompactedTable(kafka, topic, producer, "agent-loop-b")
    await second.start()
    try:
        reloaded = TableCheckpoints(second)
        state = reloaded.get(session_id)
        assert state == parked(session_id)
        assert state is not None
        assert state.status == "waiting_for_approval"
        envelope = second.get(session_id)
        assert envelope is not None
        assert envelope.type == "keel.session.checkpoint"
        assert envelope.data["status"] == "waiting_for_approval"
        await reloaded.delete(session_id)
        assert reloaded.get(session_id) is None
    finally:
        await second.stop()

    third = CompactedTable(kafka, topic, producer, "agent-loop-c")
    await third.start()
    try:
        assert TableCheckpoints(third).get(session_id) is None
    finally:
        await third.stop()


async def test_the_control_follower_raises_the_cancel_flag(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    flags = CancelFlags()
    follower = ControlFollower(TopicFollower(kafka, CONTROL, "agent-loop-test-control"), flags)
    await follower.start()
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    try:
        request = TaskCancelRequested(reason="stop it", requested_by="test")
        envelope = Envelope.wrap(request, source="test", session_id=session_id)
        await producer.publish(CONTROL, envelope, key=session_id)
        for _ in range(300):  # up to 15 s
            if flags.requested(session_id) is not None:
                break
            await asyncio.sleep(0.05)
        assert flags.requested(session_id) == "stop it"
    finally:
        await follower.stop()


async def test_a_session_past_5_mb_checkpoints_and_resumes_in_a_fresh_process(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    """The real producer refuses a record over 1 MiB: without pieces this save raises."""
    topic = f"test.checkpoints.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, cleanup="compact", retention_ms=-1)])
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    rng = random.Random(11)
    state = AgentState(session_id=session_id, goal="read every log file")
    state.move("planning")
    state.messages = [ChatMessage(role="user", content="read every log file")]
    first = CompactedTable(kafka, topic, producer, "agent-loop-a")
    await first.start()
    try:
        checkpoints = TableCheckpoints(first)
        while len(state.model_dump_json()) <= 5 * 1024 * 1024:  # one step after another
            output = rng.randbytes(256 * 1024).hex()
            state.messages.append(ChatMessage(role="tool", content=output))
            state.iteration += 1
            await checkpoints.save(state, durable=False)
        await checkpoints.save(state)
    finally:
        await first.stop()

    second = CompactedTable(kafka, topic, producer, "agent-loop-b")
    await second.start()
    try:
        resumed = TableCheckpoints(second)
        assert resumed.get(session_id) == state
        state.complete("read them all")
        result = Envelope.wrap(
            TaskCompleted(answer=state.answer, iterations=state.iteration),
            source="agent-loop",
            session_id=session_id,
        )
        marker = FinishedSession(result=result, state=state)
        await resumed.save_finished(marker)
        await resumed.save_finished(marker.model_copy(update={"state": None, "done": True}))
        swept = await resumed.expire_finished(datetime.now(UTC) + timedelta(seconds=1))
        assert swept == [session_id]
    finally:
        await second.stop()

    third = CompactedTable(kafka, topic, producer, "agent-loop-c")
    await third.start()
    try:
        assert third.keys() == []  # the marker and every piece of the state: tombstoned
    finally:
        await third.stop()
