import pytest
from pydantic import ValidationError

from keel_contracts.events import Envelope, TaskCompleted, TaskSubmitted
from keel_core.tracing import new_traceparent


def test_envelope_round_trips_through_bytes() -> None:
    task = TaskSubmitted(goal="What is 2 + 2?", max_iterations=3)
    env = Envelope.wrap(task, source="test", session_id="s1", trace=new_traceparent())
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.parse(TaskSubmitted) == task
    assert back.schema_version == 1
    assert back.type == "keel.task.submitted"


def test_parse_refuses_the_wrong_type() -> None:
    env = Envelope.wrap(TaskSubmitted(goal="x"), source="t", session_id="s")
    with pytest.raises(ValueError, match="expected event type"):
        env.parse(TaskCompleted)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", b'{"type": "x", "source": "s", "session_id": "s", "data": {}, "y": 1}'],
)
def test_malformed_envelopes_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        Envelope.from_bytes(raw)


def test_payload_validation_is_strict() -> None:
    env = Envelope(type=TaskSubmitted.event_type, source="t", session_id="s", data={"goal": ""})
    with pytest.raises(ValidationError):
        env.parse(TaskSubmitted)
