"""The book holds bounded state: decided requests are forgotten after their retention (their
id is remembered, so a redelivery is not a new request), and decisions for requests never
seen are kept only up to a limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel_approval.domain.book import ApprovalBook, Retention
from keel_approval.domain.models import Approval, Decision
from keel_contracts.errors import NotFound
from keel_core.testing import FakeClock

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def pending(approval_id: str) -> Approval:
    return Approval(
        id=approval_id,
        session_id="s1",
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "bob@example.com"},
        created_at=T0,
    )


def decided(approval_id: str, at: datetime) -> Decision:
    return Decision(approval_id=approval_id, status="approved", reviewer="ann", decided_at=at)


def test_decided_requests_are_forgotten_after_their_retention_pending_ones_never() -> None:
    clock = FakeClock(T0)
    book = ApprovalBook(clock=clock.utcnow, retention=Retention(decided_s=3600))
    for approval_id in ("old", "recent", "waiting"):
        book.add_request(pending(approval_id))
    book.apply_decision(decided("old", T0))
    book.apply_decision(decided("recent", T0 + timedelta(minutes=50)))
    clock.advance(3600 + 60)

    assert book.prune() == 1

    with pytest.raises(NotFound):
        book.get("old")
    assert book.get("recent").status == "approved"
    assert book.get("waiting").pending
    # A redelivered request of a forgotten id is not taken for a new one.
    current, added = book.add_request(pending("old"))
    assert not added
    assert [a.id for a in book.list()] == ["waiting"]


def test_at_most_decided_max_decided_requests_are_kept_oldest_forgotten_first() -> None:
    clock = FakeClock(T0)
    book = ApprovalBook(clock=clock.utcnow, retention=Retention(decided_max=2))
    for n in range(5):
        book.add_request(pending(f"a{n}"))
        book.apply_decision(decided(f"a{n}", T0 + timedelta(seconds=n)))

    assert book.prune() == 3

    assert [a.id for a in book.list(include_resolved=True)] == ["a3", "a4"]


def test_decisions_for_unknown_requests_are_bounded() -> None:
    book = ApprovalBook(retention=Retention(early_max=3))
    for n in range(10):
        book.apply_decision(decided(f"u{n}", T0))

    # Only the newest three early decisions are kept: the requests that arrive later are
    # settled by them, the older ones arrive pending.
    settled = [not book.add_request(pending(f"u{n}"))[0].pending for n in range(10)]
    assert settled == [False] * 7 + [True] * 3
