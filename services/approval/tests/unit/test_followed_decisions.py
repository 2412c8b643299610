"""Records followed on the decisions topic: a malformed one is skipped, the next one applies."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Approval
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_contracts.events import ApprovalDecided, Envelope
from keel_core.testing import InMemoryPublisher, in_memory_audit


async def test_a_malformed_followed_decision_is_skipped_and_the_next_applies() -> None:
    book = ApprovalBook()
    book.add_request(
        Approval(
            id="ap-1",
            session_id="s1",
            agent_id="a",
            tool_name="send_email",
            created_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
    )
    audit, _ = in_memory_audit("approval")
    decider = Decider(book, InMemoryPublisher(), audit, ApprovalMetrics(CollectorRegistry()))
    good = Envelope.wrap(
        ApprovalDecided(approval_id="ap-1", outcome="approved", reviewer="ann"),
        source="approval",
        session_id="s1",
    )
    malformed = good.model_copy(update={"data": {}})

    assert await decider.apply_published(malformed) is False
    assert book.get("ap-1").pending
    assert await decider.apply_published(good) is True
    assert book.get("ap-1").status == "approved"
