"""Quorum votes are published on the decisions topic, and read back: at start (a restart keeps
them) and while running (votes and decisions of other replicas reach this book)."""

from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Vote
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestReader
from keel_approval.usecases.rebuild import rebuild
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.testing import InMemoryPublisher, in_memory_audit

QUORUM = {"send_*": 3}


def request(approval_id: str = "ap-1") -> Envelope:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "all@example.com"},
        idempotency_key=f"{approval_id}:0",
    )
    return Envelope.wrap(event, source="agent-loop", session_id="s1")


def vote(approvals: list[str], approval_id: str = "ap-1") -> Envelope:
    event = ApprovalVoted(
        approval_id=approval_id, reviewer=approvals[-1], approvals=approvals, required=3
    )
    return Envelope.wrap(event, source="approval", session_id="s1")


def decider_over(book: ApprovalBook) -> tuple[Decider, InMemoryPublisher]:
    """Call inside a running loop (the audit emitter starts its sender task)."""
    audit, _ = in_memory_audit("approval")
    audit.start()
    published = InMemoryPublisher()
    return Decider(book, published, audit, ApprovalMetrics(CollectorRegistry())), published


def test_the_rebuild_restores_the_votes_cast_before_a_restart() -> None:
    book = ApprovalBook()
    rebuild(
        book,
        RequestReader(quorum=QUORUM),
        [request()],
        [vote(["alice"]), vote(["alice", "bob"])],
    )
    restored = book.get("ap-1")
    assert restored.pending
    assert restored.approved_by == ("alice", "bob")


def test_votes_read_before_their_request_wait_for_it() -> None:
    book = ApprovalBook()
    assert not book.apply_vote(Vote(approval_id="ap-1", approvals=("carol",)))
    rebuild(book, RequestReader(quorum=QUORUM), [request()], [])
    assert book.get("ap-1").approved_by == ("carol",)


def test_votes_merge_and_a_repeated_one_changes_nothing() -> None:
    book = ApprovalBook()
    rebuild(book, RequestReader(quorum=QUORUM), [request()], [])
    assert book.apply_vote(Vote(approval_id="ap-1", approvals=("alice",)))
    assert not book.apply_vote(Vote(approval_id="ap-1", approvals=("alice",)))
    # Another replica's vote, cast before it saw alice's: both count, alice first.
    assert book.apply_vote(Vote(approval_id="ap-1", approvals=("bob",)))
    assert book.get("ap-1").approved_by == ("alice", "bob")


async def test_after_a_restart_the_remaining_approval_completes_the_quorum() -> None:
    first_book = ApprovalBook()
    rebuild(first_book, RequestReader(quorum=QUORUM), [request()], [])
    first, before_restart = decider_over(first_book)
    await first.resolve("ap-1", "approve", "alice", "fine by me")
    await first.resolve("ap-1", "approve", "bob")
    assert [e.type for e in before_restart.envelopes(APPROVAL_DECISIONS)] == [
        ApprovalVoted.event_type,
        ApprovalVoted.event_type,
    ]

    restarted = ApprovalBook()
    rebuild(
        restarted,
        RequestReader(quorum=QUORUM),
        [request()],
        before_restart.envelopes(APPROVAL_DECISIONS),
    )
    second, after_restart = decider_over(restarted)
    decided = await second.resolve("ap-1", "approve", "carol")
    assert decided.status == "approved"
    [event] = [e.parse(ApprovalDecided) for e in after_restart.envelopes(APPROVAL_DECISIONS)]
    assert (event.outcome, event.reviewer) == ("approved", "alice,bob,carol")


async def test_followed_records_apply_once_and_never_undo_our_own_decision() -> None:
    book = ApprovalBook()
    rebuild(book, RequestReader(quorum=QUORUM), [request()], [])
    decider, published = decider_over(book)
    await decider.resolve("ap-1", "approve", "alice")
    # Our own vote read back from the topic: already in the book.
    [own_vote] = published.envelopes(APPROVAL_DECISIONS)
    assert not await decider.apply_published(own_vote)
    # Another replica's reject is followed: the request is settled here too.
    other = ApprovalDecided(approval_id="ap-1", outcome="rejected", reviewer="dave")
    assert await decider.apply_published(Envelope.wrap(other, source="approval", session_id="s1"))
    settled = book.get("ap-1")
    assert (settled.status, settled.decided_by) == ("rejected", "dave")
    # A vote arriving after the decision changes nothing.
    assert not await decider.apply_published(vote(["alice", "erin"]))
    assert book.get("ap-1").status == "rejected"
