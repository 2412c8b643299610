"""The start-up rebuild on the real broker: read both topics to their end without a group."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from keel_approval.domain.book import ApprovalBook
from keel_approval.usecases.intake import RequestReader
from keel_approval.usecases.rebuild import Rejected, apply_record, rebuild
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted, Envelope
from keel_contracts.topics import TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.follower import TopicFollower
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def test_a_restarted_book_has_the_pending_requests_and_the_decisions(
    kafka: KafkaSettings,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    requests, decisions = f"test.approval.requests.{suffix}", f"test.approval.decisions.{suffix}"
    await ensure_topics(kafka, [TopicSpec(requests, retention_ms=-1), TopicSpec(decisions)])
    producer = EventProducer(kafka, "test-approval")
    await producer.start()
    try:
        for i in range(6):
            event = ApprovalRequested(
                approval_id=f"ap-{i}",
                agent_id="agent-1",
                tool_name="send_email",
                arguments={"n": i},
                idempotency_key=f"k{i}",
            )
            session = f"s{i}"
            await producer.publish(
                requests, Envelope.wrap(event, source="agent-loop", session_id=session), session
            )
        for i in (1, 4):
            decided = ApprovalDecided(approval_id=f"ap-{i}", outcome="rejected", reviewer="alice")
            await producer.publish(
                decisions, Envelope.wrap(decided, source="approval", session_id=f"s{i}"), f"s{i}"
            )
    finally:
        await producer.stop()

    book = ApprovalBook()
    added, applied = rebuild(
        book,
        RequestReader(),
        await read_to_end(TopicFollower(kafka, requests, "test-rebuild")),
        await read_to_end(TopicFollower(kafka, decisions, "test-rebuild")),
    )
    assert (added, applied) == (6, 2)
    assert sorted(a.id for a in book.list()) == ["ap-0", "ap-2", "ap-3", "ap-5"]
    assert book.get("ap-4").status == "rejected"


async def test_the_follower_applies_what_other_replicas_publish_after_the_start(
    kafka: KafkaSettings,
) -> None:
    topic = f"test.approval.decisions.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic)])
    producer = EventProducer(kafka, "test-approval")
    await producer.start()
    book = ApprovalBook()
    rebuild(book, RequestReader(quorum={"wire_*": 3}), [request("ap-1"), request("ap-2")], [])
    follower = TopicFollower(kafka, topic, "test-follow")
    try:
        await producer.publish(topic, vote("ap-1", ["alice"]), "s")  # before the start
        assert rebuild(book, RequestReader(), [], await follower.load()) == (0, 1)
        applied = asyncio.Event()

        async def apply(envelope: Envelope) -> None:
            apply_record(book, envelope)
            if not book.get("ap-2").pending:
                applied.set()

        follower.follow(apply)
        await producer.publish(topic, vote("ap-1", ["alice", "bob"]), "s")
        rejected = ApprovalDecided(approval_id="ap-2", outcome="rejected", reviewer="carol")
        await producer.publish(topic, Envelope.wrap(rejected, source="approval", session_id="s"))
        await asyncio.wait_for(applied.wait(), 20)
    finally:
        await follower.stop()
        await producer.stop()
    assert book.get("ap-1").approved_by == ("alice", "bob")
    assert (book.get("ap-2").status, book.get("ap-2").decided_by) == ("rejected", "carol")


async def read_to_end(follower: TopicFollower) -> list[Envelope]:
    """What the service's rebuild does with its runtime's follower: load, then let go."""
    try:
        return await follower.load()
    finally:
        await follower.stop()


def request(approval_id: str) -> Envelope:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="agent-1",
        tool_name="wire_money",
        arguments={"amount": 1},
        idempotency_key=f"{approval_id}:0",
    )
    return Envelope.wrap(event, source="agent-loop", session_id="s")


def vote(approval_id: str, approvals: list[str]) -> Envelope:
    event = ApprovalVoted(
        approval_id=approval_id, reviewer=approvals[-1], approvals=approvals, required=3
    )
    return Envelope.wrap(event, source="approval", session_id="s")


async def test_a_poison_request_loaded_at_start_goes_to_the_dlq_with_its_origin(
    kafka: KafkaSettings,
) -> None:
    requests = f"test.approval.requests.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(requests, retention_ms=-1), TopicSpec(f"{requests}.dlq")])
    producer = EventProducer(kafka, "test-approval")
    await producer.start()
    try:
        for approval_id in ("ap-1", ""):
            event = ApprovalRequested(
                approval_id=approval_id,
                agent_id="a",
                tool_name="t",
                arguments={},
                idempotency_key="k",
            )
            await producer.publish(
                requests, Envelope.wrap(event, source="agent-loop", session_id="s"), "s"
            )
    finally:
        await producer.stop()
    follower = TopicFollower(kafka, requests, "test-rebuild")
    dead = TopicFollower(kafka, f"{requests}.dlq", "test-dlq")
    try:
        rejected: list[Rejected] = []
        book = ApprovalBook()
        rebuild(book, RequestReader(), await follower.load(), [], rejected=rejected)
        assert [a.id for a in book.list()] == ["ap-1"]
        for skipped in rejected:
            await follower.dead_letter(skipped.envelope, skipped.reason, skipped.error)
        await dead.start_at_beginning()
        async with asyncio.timeout(30):
            found = []
            while not found:
                found = await dead.poll()
    finally:
        await follower.stop()
        await dead.stop()
    assert [e.parse(ApprovalRequested).approval_id for _, e in found] == [""]
