"""Rebuilding the book from the two topics, and timing out overdue requests."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal

from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import DeadlineSweeper, Decider
from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_approval.usecases.rebuild import rebuild
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalRequested,
    Envelope,
    TaskCancelRequested,
)
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.testing import FakeClock, InMemoryPublisher, in_memory_audit

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def request(approval_id: str, deadline: str = "", session_id: str = "s1") -> Envelope:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "bob@example.com"},
        idempotency_key=f"{approval_id}:0",
        deadline=deadline,
    )
    envelope = Envelope.wrap(event, source="agent-loop", session_id=session_id)
    return envelope.model_copy(update={"time": T0})


Status = Literal["approved", "rejected", "modified", "timed_out"]


def decision(approval_id: str, outcome: Status = "approved") -> Envelope:
    event = ApprovalDecided(approval_id=approval_id, outcome=outcome, reviewer="alice")
    return Envelope.wrap(event, source="approval", session_id="s1")


def test_rebuild_restores_pending_and_keeps_decisions_made() -> None:
    book = ApprovalBook()
    reader = RequestReader(default_timeout_s=60)
    added, applied = rebuild(
        book,
        reader,
        [request("a"), request("b"), request("a"), request("c")],
        [decision("b", "rejected"), decision("zzz")],
    )
    assert (added, applied) == (3, 1)
    assert [a.id for a in book.list()] == ["a", "c"]
    assert book.get("b").status == "rejected"
    assert book.get("b").decided_by == "alice"
    assert book.get("a").expires_at == T0 + timedelta(seconds=60)


def test_a_decision_read_before_its_request_settles_it_when_it_arrives() -> None:
    book = ApprovalBook()
    rebuild(book, RequestReader(), [], [decision("late", "modified")])
    book.add_request(RequestReader().read(request("late")))
    assert book.get("late").status == "modified"
    assert book.pending_count == 0


async def test_live_redelivery_after_rebuild_is_not_audited_again() -> None:
    audit, published = in_memory_audit("approval")
    audit.start()
    book = ApprovalBook()
    reader = RequestReader()
    rebuild(book, reader, [request("a")], [])
    handler = RequestHandler(
        RequestIntake(book, audit, ApprovalMetrics(CollectorRegistry())), reader=reader
    )
    await handler.on_request(request("a"))
    await handler.on_request(request("new"))
    await audit.close()
    assert [r.subject for r in published.audit_records()] == ["new"]
    assert [a.id for a in book.list()] == ["a", "new"]


def rig(clock: FakeClock) -> tuple[ApprovalBook, Decider, InMemoryPublisher, CollectorRegistry]:
    audit, _ = in_memory_audit("approval")
    audit.start()
    registry = CollectorRegistry()
    book = ApprovalBook(clock=clock.utcnow)
    publisher = InMemoryPublisher()
    return book, Decider(book, publisher, audit, ApprovalMetrics(registry)), publisher, registry


async def test_overdue_requests_are_published_as_timed_out() -> None:
    clock = FakeClock(T0)
    book, decider, publisher, registry = rig(clock)
    reader = RequestReader(default_timeout_s=600)
    book.add_request(reader.read(request("own-deadline", deadline="2030-01-01T12:05:00+00:00")))
    book.add_request(reader.read(request("default", session_id="s2")))
    book.add_request(reader.read(request("naive", deadline="2030-01-01T12:01:00")))

    assert await decider.expire_due() == []
    clock.advance(5 * 60)
    timed_out = await decider.expire_due()
    assert [a.id for a in timed_out] == ["naive", "own-deadline"]
    assert {a.status for a in timed_out} == {"timed_out"}
    events = [e.parse(ApprovalDecided) for e in publisher.envelopes(APPROVAL_DECISIONS)]
    assert [(e.approval_id, e.outcome, e.reviewer) for e in events] == [
        ("naive", "timed_out", "keel-approval"),
        ("own-deadline", "timed_out", "keel-approval"),
    ]
    assert [a.id for a in book.list()] == ["default"]
    assert registry.get_sample_value("keel_approval_decisions_total", {"outcome": "timed_out"}) == 2
    assert (
        registry.get_sample_value(
            "keel_approval_time_to_decision_seconds_sum", {"outcome": "timed_out"}
        )
        == 600.0
    )
    clock.advance(5 * 60)  # ten minutes in
    assert [a.id for a in await decider.expire_due()] == ["default"]
    assert await decider.expire_due() == []  # decided requests are never timed out twice


async def test_a_failed_publish_keeps_the_request_pending_for_the_next_sweep() -> None:
    clock = FakeClock(T0)
    book, decider, publisher, _ = rig(clock)
    book.add_request(RequestReader(default_timeout_s=1).read(request("a")))
    clock.advance(2)

    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker down")

    real = publisher.publish
    publisher.publish = broken  # type: ignore[method-assign]
    assert await decider.expire_due() == []
    assert book.get("a").pending
    publisher.publish = real  # type: ignore[method-assign]
    assert [a.id for a in await decider.expire_due()] == ["a"]


async def test_the_sweeper_times_out_in_the_background() -> None:
    clock = FakeClock(T0)
    book, decider, publisher, _ = rig(clock)
    book.add_request(RequestReader(default_timeout_s=1).read(request("a")))
    clock.advance(5)
    sweeper = DeadlineSweeper(decider, interval_s=0.01)
    await sweeper.start()
    for _ in range(200):
        if not book.get("a").pending:
            break
        await asyncio.sleep(0.01)
    await sweeper.stop()
    assert book.get("a").status == "timed_out"
    assert len(publisher.envelopes(APPROVAL_DECISIONS)) == 1


def test_rebuild_skips_and_hands_back_records_it_cannot_use() -> None:
    from keel_approval.usecases.rebuild import Rejected

    book = ApprovalBook()
    bad_decision = Envelope.wrap(
        TaskCancelRequested(reason="not a decision"),
        source="approval",
        session_id="s1",
    ).model_copy(update={"type": ApprovalDecided.event_type})
    rejected: list[Rejected] = []
    added, applied = rebuild(
        book,
        RequestReader(),
        [request(""), request("ok"), decision("ok").model_copy(update={"type": "other"})],
        [bad_decision],
        rejected=rejected,
    )
    assert (added, applied) == (1, 0)
    assert [(r.topic, r.reason.split(":")[1].strip()) for r in rejected] == [
        ("keel.approval.requests", "invalid approval request"),  # empty id
        ("keel.approval.requests", "invalid approval request"),  # another event type
        (APPROVAL_DECISIONS, "invalid decision"),
    ]
    assert [a.id for a in book.list()] == ["ok"]
