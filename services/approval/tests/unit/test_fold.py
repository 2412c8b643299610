"""The fold that turns one approval's intents, in log order, into its one decision (ADR 0014):
every replica runs it over the same records and must reach the same decision at the same
record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keel_approval.domain.fold import Folded, Intent, fold
from keel_approval.domain.models import TIMEOUT_REVIEWER, Approval, Outcome

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def pending(required: int = 1, schema: dict[str, Any] | None = None) -> Approval:
    return Approval(
        id="ap-1",
        session_id="s1",
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "all@example.com"},
        created_at=T0,
        required_approvals=required,
        arguments_schema=schema or {},
    )


def intent(
    outcome: Outcome, reviewer: str, at_s: int, modified: dict[str, Any] | None = None
) -> Intent:
    return Intent(
        approval_id="ap-1",
        outcome=outcome,
        reviewer=reviewer,
        modified_arguments=modified,
        session_id="s1",
        at=T0 + timedelta(seconds=at_s),
        record=f"r{at_s}",
    )


def fold_all(approval: Approval, intents: list[Intent]) -> list[Folded]:
    steps = []
    for one in intents:
        step = fold(approval, one)
        approval = step.approval
        steps.append(step)
    return steps


def test_the_first_terminal_intent_in_log_order_wins_and_later_ones_lose() -> None:
    steps = fold_all(pending(), [intent("approve", "alice", 1), intent("reject", "bob", 2)])
    assert [(s.counted, s.decided) for s in steps] == [(True, True), (False, False)]
    decided = steps[-1].approval
    assert (decided.status, decided.decided_by) == ("approved", "alice")
    assert "is already approved by alice" in steps[1].reason
    # The other order decides the other way: order, not arrival at a replica, decides.
    swapped = fold_all(pending(), [intent("reject", "bob", 1), intent("approve", "alice", 2)])
    assert (swapped[-1].approval.status, swapped[-1].approval.decided_by) == ("rejected", "bob")


def test_the_decision_takes_the_completing_record_time_so_every_replica_agrees() -> None:
    records = [intent("approve", "alice", 1), intent("approve", "bob", 7)]
    first = fold_all(pending(required=2), records)
    again = fold_all(pending(required=2), records)
    assert first[-1].approval == again[-1].approval
    assert first[-1].approval.decided_at == T0 + timedelta(seconds=7)


def test_the_quorum_counts_distinct_eligible_reviewers() -> None:
    steps = fold_all(
        pending(required=2),
        [
            intent("approve", "alice", 1),
            intent("approve", "alice", 2),  # the same reviewer again
            intent("approve", "agent-1", 3),  # the requesting agent
            intent("approve", "bob", 4),
        ],
    )
    assert [(s.counted, s.decided) for s in steps] == [
        (True, False),
        (False, False),
        (False, False),
        (True, True),
    ]
    decided = steps[-1].approval
    assert decided.status == "approved"
    assert decided.decided_by == "alice,bob"
    assert decided.approved_by == ("alice", "bob")


def test_a_modify_under_a_quorum_or_against_the_schema_is_refused_and_decides_nothing() -> None:
    schema = {"type": "object", "properties": {"to": {"type": "string"}}}
    quorum = fold(pending(required=2), intent("modify", "bob", 1, {"to": "x@example.com"}))
    assert not quorum.counted
    assert quorum.approval.pending
    bad = fold(pending(schema=schema), intent("modify", "bob", 1, {"to": 5}))
    assert not bad.counted
    good = fold(pending(schema=schema), intent("modify", "bob", 1, {"to": "x@example.com"}))
    assert good.decided
    assert good.approval.modified_arguments == {"to": "x@example.com"}


def test_a_time_out_racing_a_vote_is_decided_by_log_order() -> None:
    vote_first = fold_all(
        pending(required=2),
        [intent("approve", "alice", 1), intent("time_out", TIMEOUT_REVIEWER, 2)],
    )
    assert vote_first[-1].approval.status == "timed_out"
    assert vote_first[-1].approval.approved_by == ("alice",)
    time_out_first = fold_all(
        pending(), [intent("time_out", TIMEOUT_REVIEWER, 1), intent("approve", "alice", 2)]
    )
    assert time_out_first[-1].approval.status == "timed_out"
    assert not time_out_first[-1].counted
    # Two sweepers (two replicas) asking for the time-out: one decision.
    both = fold_all(
        pending(),
        [intent("time_out", TIMEOUT_REVIEWER, 1), intent("time_out", TIMEOUT_REVIEWER, 2)],
    )
    assert [s.decided for s in both] == [True, False]


def test_a_time_out_named_by_a_reviewer_and_an_intent_of_another_session_are_refused() -> None:
    assert not fold(pending(), intent("time_out", "alice", 1)).counted
    other = intent("approve", "alice", 1).model_copy(update={"session_id": "s2"})
    assert not fold(pending(), other).counted
