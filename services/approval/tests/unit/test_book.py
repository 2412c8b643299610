import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Approval
from keel_approval.errors import WatcherLagged
from keel_contracts.errors import FailedPrecondition, InvalidArgument, NotFound

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def request(approval_id: str = "a1", minutes: int = 0, **changes: object) -> Approval:
    fields: dict[str, object] = {
        "id": approval_id,
        "session_id": "s1",
        "agent_id": "agent",
        "tool_name": "send_email",
        "arguments": {"to": "ceo@example.com"},
        "idempotency_key": "s1:1:0",
        "created_at": T0 + timedelta(minutes=minutes),
    }
    return Approval.model_validate({**fields, **changes})


def test_add_is_idempotent_and_a_redelivery_does_not_reset_a_decision() -> None:
    book = ApprovalBook(clock=lambda: T0)
    first, added = book.add_request(request())
    assert added
    assert first.status == "pending"
    _, again = book.add_request(request(reasoning="redelivered"))
    assert not again
    book.resolve("a1", "approve", "alice")
    current, added = book.add_request(request())
    assert not added
    assert current.status == "approved"
    assert book.get("a1").decided_by == "alice"


def test_resolve_outcomes_and_their_recorded_fields() -> None:
    book = ApprovalBook(clock=lambda: T0)
    for approval_id in ("a", "r", "m"):
        book.add_request(request(approval_id))
    approved = book.resolve("a", "approve", " alice ", comment="fine")
    assert (approved.status, approved.decided_by, approved.comment) == ("approved", "alice", "fine")
    assert approved.decided_at == T0
    assert book.resolve("r", "reject", "bob").status == "rejected"
    modified = book.resolve("m", "modify", "carol", modified_arguments={"to": "me@example.com"})
    assert modified.status == "modified"
    assert modified.modified_arguments == {"to": "me@example.com"}
    assert modified.arguments == {"to": "ceo@example.com"}


def test_resolve_errors() -> None:
    book = ApprovalBook()
    book.add_request(request())
    with pytest.raises(NotFound):
        book.resolve("nope", "approve", "alice")
    with pytest.raises(InvalidArgument, match="reviewer"):
        book.resolve("a1", "approve", "  ")
    with pytest.raises(InvalidArgument, match="JSON object"):
        book.resolve("a1", "modify", "alice")
    with pytest.raises(InvalidArgument, match="JSON object"):
        book.resolve("a1", "modify", "alice", modified_arguments=["not", "an", "object"])
    with pytest.raises(InvalidArgument, match="only allowed with modify"):
        book.resolve("a1", "approve", "alice", modified_arguments={"x": 1})
    assert book.get("a1").status == "pending"
    book.resolve("a1", "reject", "alice")
    with pytest.raises(FailedPrecondition, match="already rejected"):
        book.resolve("a1", "approve", "bob")


EMAIL_SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string", "format": "email"}, "cc": {"type": "array"}},
    "required": ["to"],
    "additionalProperties": False,
}


def test_modified_arguments_must_meet_the_tools_schema() -> None:
    book = ApprovalBook()
    book.add_request(request(arguments_schema=EMAIL_SCHEMA))
    with pytest.raises(InvalidArgument, match=r"schema at \(top level\): 'to' is a required"):
        book.resolve("a1", "modify", "alice", modified_arguments={"cc": []})
    with pytest.raises(InvalidArgument, match="schema at cc: 'x' is not of type 'array'"):
        book.resolve("a1", "modify", "alice", modified_arguments={"to": "a@b.c", "cc": "x"})
    with pytest.raises(InvalidArgument, match="Additional properties"):
        book.resolve("a1", "modify", "alice", modified_arguments={"to": "a@b.c", "bcc": 1})
    assert book.get("a1").pending
    ok = book.resolve("a1", "modify", "alice", modified_arguments={"to": "me@example.com"})
    assert ok.modified_arguments == {"to": "me@example.com"}


def test_without_a_schema_any_object_is_accepted_here() -> None:
    book = ApprovalBook()
    book.add_request(request())
    assert book.resolve("a1", "modify", "alice", modified_arguments={"x": 1}).status == "modified"


def test_decide_changes_nothing_until_recorded() -> None:
    book = ApprovalBook()
    book.add_request(request())
    decided = book.decide("a1", "approve", "alice")
    assert book.get("a1").status == "pending"
    book.record(decided)
    assert book.get("a1").status == "approved"
    with pytest.raises(FailedPrecondition):
        book.record(decided)


def test_list_pending_by_default_oldest_first() -> None:
    book = ApprovalBook()
    book.add_request(request("late", minutes=5))
    book.add_request(request("early", minutes=1))
    book.add_request(request("done", minutes=0))
    book.resolve("done", "approve", "alice")
    assert [a.id for a in book.list()] == ["early", "late"]
    assert [a.id for a in book.list(include_resolved=True)] == ["done", "early", "late"]
    assert book.pending_count == 2


async def test_watchers_see_adds_and_decisions_in_order() -> None:
    book = ApprovalBook()
    with book.watch() as one, book.watch() as two:
        book.add_request(request())
        book.resolve("a1", "approve", "alice")
        for watcher in (one, two):
            assert (await watcher.next()).status == "pending"
            assert (await watcher.next()).status == "approved"
    book.add_request(request("after"))  # nobody is subscribed: nothing is kept


async def test_a_watcher_that_falls_behind_is_cut_off() -> None:
    book = ApprovalBook(watch_queue_size=2)
    with book.watch() as slow:
        for i in range(4):
            book.add_request(request(f"a{i}"))
        assert (await slow.next()).id == "a0"
        assert (await slow.next()).id == "a1"
        with pytest.raises(WatcherLagged):
            await asyncio.wait_for(slow.next(), 1)
