"""send_email writes to the outbox, keyed by session, and only through a verified approval."""

from keel_contracts.events import Envelope
from keel_contracts.topics import OUTBOX
from keel_core.testing import InMemoryPublisher
from keel_tool_gateway.adapters.outbox import KafkaOutbox
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.adapters.tools.send_email import message_id_for
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import ApprovalView, RequestContext
from keel_tool_gateway.domain.outbox import OutboundMessage
from keel_tool_gateway.testing import RecordingOutbox, StaticApprovals, StaticPolicy

CTX = RequestContext(session_id="sess-3", agent_id="a1", traceparent="00-t-s-01")
ARGS = '{"to": "bob@example.com", "subject": "Hi", "body": "The build is green."}'
KEY = "sess-3:1:0"


def make(outbox: RecordingOutbox, approvals: list[ApprovalView] | None = None) -> ExecutionService:
    registry = builtin_registry(outbox=outbox)
    policy = StaticPolicy("allow", per_tool={"send_email": "require_approval"})
    return ExecutionService(
        registry, policy, ResultLedger(), approvals=StaticApprovals(approvals or [])
    )


def approved(status: str = "approved", modified: str = "") -> ApprovalView:
    return ApprovalView(
        id="ap-9",
        status=status,
        tool_name="send_email",
        idempotency_key=KEY,
        arguments_json=ARGS,
        modified_arguments_json=modified,
    )


async def test_without_approval_nothing_is_sent() -> None:
    outbox = RecordingOutbox()
    result = await make(outbox).execute(CTX, "send_email", ARGS, KEY)
    assert result.status == "needs_approval"
    assert outbox.sent == []


async def test_approved_email_is_queued_once_keyed_by_session() -> None:
    outbox = RecordingOutbox()
    service = make(outbox, [approved()])
    result = await service.execute(CTX, "send_email", ARGS, KEY, approval_id="ap-9")
    message_id = message_id_for(KEY)
    assert (result.status, result.output) == (
        "ok",
        f"queued message {message_id} to bob@example.com",
    )
    [sent] = outbox.sent
    assert (sent.session_id, sent.trace) == ("sess-3", "00-t-s-01")
    assert sent.message == OutboundMessage(
        message_id=message_id,
        to="bob@example.com",
        subject="Hi",
        body="The build is green.",
        idempotency_key=KEY,
        approval_id="ap-9",
    )
    replay = await service.execute(CTX, "send_email", ARGS, KEY, approval_id="ap-9")
    assert replay.replayed is True
    assert len(outbox.sent) == 1


async def test_modified_recipient_is_used() -> None:
    outbox = RecordingOutbox()
    modified = '{"to": "carol@example.com", "subject": "Hi", "body": "Reviewed."}'
    service = make(outbox, [approved("modified", modified)])
    result = await service.execute(CTX, "send_email", ARGS, KEY, approval_id="ap-9")
    assert result.output.endswith(" to carol@example.com")
    assert outbox.sent[0].message.body == "Reviewed."


async def test_bad_address_and_multi_line_subject_are_refused() -> None:
    outbox = RecordingOutbox()
    args = '{"to": "bob@example.com, eve@evil.test", "subject": "a\\nBcc: x", "body": ""}'
    allowing = ExecutionService(
        builtin_registry(outbox=outbox), StaticPolicy("allow"), ResultLedger()
    )
    result = await allowing.execute(CTX, "send_email", args)
    assert result.status == "error"
    assert "to: String should match pattern" in result.error
    assert "subject: String should match pattern" in result.error
    assert outbox.sent == []


async def test_outbox_failure_is_a_tool_error() -> None:
    outbox = RecordingOutbox(error=RuntimeError("broker down"))
    service = make(outbox, [approved()])
    result = await service.execute(CTX, "send_email", ARGS, KEY, approval_id="ap-9")
    assert (result.status, result.error) == (
        "error",
        "send_email failed: RuntimeError: broker down",
    )


async def test_kafka_outbox_writes_the_event_to_the_outbox_topic() -> None:
    publisher = InMemoryPublisher()
    message = OutboundMessage(message_id="m1", to="a@b.co", subject="s", body="b")
    await KafkaOutbox(publisher).send(message, session_id="sess-1", trace="tp")
    [record] = publisher.sent
    assert (record.topic, record.key) == (OUTBOX, b"sess-1")
    envelope = Envelope.from_bytes(record.value or b"")
    assert (envelope.id, envelope.type, envelope.trace) == ("m1", "keel.outbox.email", "tp")
    assert envelope.parse(OutboundMessage) == message


def test_message_ids_follow_the_key() -> None:
    assert message_id_for("k") == message_id_for("k") != message_id_for("k2")
    assert message_id_for("") != message_id_for("")
