import pytest
from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestIntake
from keel_contracts.events import ApprovalRequested, Envelope, TaskSubmitted
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.bus import PoisonMessage
from keel_core.testing import in_memory_audit

REQUEST = ApprovalRequested(
    approval_id="ap-1",
    agent_id="agent-1",
    tool_name="transfer_money",
    arguments={"amount": 900},
    reasoning="the user asked",
    idempotency_key="s1:2:0",
    deadline="2030-01-01T00:00:00+00:00",
)


async def test_a_request_joins_the_book_once_and_is_audited_once() -> None:
    audit, published = in_memory_audit("approval")
    audit.start()
    book = ApprovalBook()
    handler = RequestHandler(RequestIntake(book, audit, ApprovalMetrics(CollectorRegistry())))
    envelope = Envelope.wrap(REQUEST, source="agent-loop", session_id="s1", trace="00-ab-cd-01")
    await handler.on_request(envelope)
    await handler.on_request(envelope)  # redelivered
    await audit.close()

    approval = book.get("ap-1")
    assert approval.session_id == "s1"
    assert approval.tool_name == "transfer_money"
    assert approval.arguments == {"amount": 900}
    assert approval.created_at == envelope.time
    assert approval.deadline == "2030-01-01T00:00:00+00:00"
    records = published.audit_records()
    assert [r.action for r in records] == ["approval.requested"]
    assert records[0].subject == "ap-1"
    assert records[0].actor == "agent-1"
    assert published.envelopes("keel.audit")[0].session_id == "s1"


async def test_the_decision_continues_the_requests_trace() -> None:
    audit, published = in_memory_audit("approval")
    audit.start()
    book = ApprovalBook()
    handler = RequestHandler(RequestIntake(book, audit, ApprovalMetrics(CollectorRegistry())))
    decider = Decider(book, published, audit, ApprovalMetrics(CollectorRegistry()))
    trace = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    await handler.on_request(
        Envelope.wrap(REQUEST, source="agent-loop", session_id="s1", trace=trace)
    )
    await decider.resolve("ap-1", "approve", "alice")
    await audit.close()
    (decision,) = published.envelopes(APPROVAL_DECISIONS)
    assert decision.trace == trace
    assert decision.session_id == "s1"


async def test_wrong_event_type_and_bad_payload_are_poison() -> None:
    audit, published = in_memory_audit("approval")
    handler = RequestHandler(
        RequestIntake(ApprovalBook(), audit, ApprovalMetrics(CollectorRegistry()))
    )
    wrong = Envelope.wrap(TaskSubmitted(goal="hi"), source="x", session_id="s1")
    with pytest.raises(PoisonMessage, match="keel.task.submitted"):
        await handler.on_request(wrong)
    broken = Envelope(
        type=ApprovalRequested.event_type, source="x", session_id="s1", data={"tool_name": 1}
    )
    with pytest.raises(PoisonMessage, match="invalid approval request"):
        await handler.on_request(broken)
    assert published.sent == []
