"""The audit record's bytes are a format: records already on ``keel.audit`` must verify with
this code, and records this code writes must verify with older readers. These tests rebuild
each record independently, the way records were always built (a pydantic validate-and-dump
round trip, canonical JSON via ``json.dumps``, sha256, Ed25519 over ``{"data", "envelope"}``),
and pin one record's hash and signature as literals, so any silent change to what is hashed or
signed fails here."""

import base64
import enum
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel_contracts.events import AuditRecord, Envelope
from keel_contracts.topics import AUDIT
from keel_core import audit as audit_module
from keel_core.audit import AuditEmitter, verify_chain, verify_signature
from keel_core.redaction import bounded_name
from keel_core.testing import InMemoryPublisher
from keel_core.trust import Signer

# A fixed key: Ed25519 signatures are deterministic, so the same bytes give the same signature.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OPTIONAL_HASHED = ("identity", "prev_producer", "envelope_digest")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def expected_data(
    envelope: Envelope, inputs: dict[str, Any], key: Ed25519PrivateKey | None
) -> dict[str, Any]:
    """A record's payload built the way the emitter always built it, from its inputs and its
    envelope's own fields: independent of ``keel_core.audit``'s code."""
    header = envelope.model_dump(mode="json", exclude={"data"})
    digest = hashlib.sha256(_canonical(header).encode()).hexdigest() if key else ""
    fields = AuditRecord.model_validate(
        {**inputs, "hash": "", "envelope_digest": digest}
    ).model_dump(mode="json")
    hashed = {
        k: v
        for k, v in fields.items()
        if k not in ("hash", "signature") and not (k in OPTIONAL_HASHED and v == "")
    }
    fields["hash"] = hashlib.sha256(_canonical(hashed).encode()).hexdigest()
    if key is not None:
        unsigned = {k: v for k, v in fields.items() if k != "signature"}
        signed = _canonical({"envelope": header, "data": unsigned}).encode()
        fields["signature"] = base64.urlsafe_b64encode(key.sign(signed)).rstrip(b"=").decode()
    return fields


class Colour(enum.StrEnum):
    RED = "red"


# Details as callers pass them: plain JSON, and values only pydantic's JSON dump turns into JSON
# (a datetime, a tuple, an enum member, a float key's neighbour), which must still be dumped so.
DETAILS = [
    {},
    {"model": "m", "tokens": 3, "cost_usd": 0.25, "cached": False, "tools": ["a", "b"]},
    {"nested": {"deep": [1, {"x": None}]}, "text": 'snow ☃ and "quotes"\n'},
    {"when": datetime(2026, 12, 6, 17, 0, tzinfo=UTC), "pair": (1, 2), "colour": Colour.RED},
    {"big": 10**30, "inf": float("inf")},
]


async def _emit(
    signer: Signer | None, details: dict[str, Any], actor: str = "agent", subject: str = "model"
) -> tuple[list[Envelope], str]:
    publisher = InMemoryPublisher()
    emitter = AuditEmitter(
        publisher, "llm-gateway@run", source="llm-gateway", identity="llm-gateway", signer=signer
    )
    emitter.start()
    for index in range(3):
        await emitter.record(
            "llm.completion",
            actor=f"{actor}-{index}",
            subject=subject,
            session_id="s-1",
            trace="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            details=details,
        )
    await emitter.close()
    sent = [Envelope.from_bytes(r.value or b"") for r in publisher.sent if r.topic == AUDIT]
    return sent, emitter.producer_id


# Names as callers may pass them: escapes, non-ASCII text, and one long enough to be cut.
NAMES = [("agent", "model"), ('a"b\\c\n\u2028☃', "ü" * 1500)]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize(("actor", "subject"), NAMES)
async def test_each_record_is_the_bytes_the_old_construction_makes(
    signed: bool, details: dict[str, Any], actor: str, subject: str
) -> None:
    signer = Signer(KEY) if signed else None
    envelopes, producer = await _emit(signer, details, actor, subject)
    prev = audit_module.GENESIS
    for sequence, envelope in enumerate(envelopes):
        inputs = {
            "producer": producer,
            "sequence": sequence,
            "action": "llm.completion",
            "actor": bounded_name(f"{actor}-{sequence}"),
            "subject": bounded_name(subject),
            "details": details,
            "prev_hash": prev,
            "identity": "llm-gateway" if signed else "",
        }
        expected = expected_data(envelope, inputs, KEY if signed else None)
        # Same fields, same values, same order on the wire.
        assert list(envelope.data.items()) == list(expected.items())
        if signer is not None:
            assert verify_signature(envelope, signer.public)
        prev = expected["hash"]
    assert verify_chain([e.parse(AuditRecord) for e in envelopes]) is None


async def test_a_plain_record_is_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain JSON details (every service's usual case) skip the pydantic round trip: the record
    is built once, from its fields."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the record was validated again")

    monkeypatch.setattr(AuditRecord, "model_validate", refuse)
    envelopes, _ = await _emit(Signer(KEY), DETAILS[1])
    assert [e.data["sequence"] for e in envelopes] == [0, 1, 2]
    assert all(verify_signature(e, Signer(KEY).public) for e in envelopes)


def test_a_record_of_the_old_format_is_pinned() -> None:
    """One record, its envelope fixed, hashed and signed: literals written down from the code
    before the record was built once. A change to what is hashed or signed fails here."""
    envelope = Envelope(
        id="0123456789abcdef0123456789abcdef",
        type=AuditRecord.event_type,
        source="llm-gateway",
        time=datetime(2026, 12, 6, 17, 0, 0, 123456, tzinfo=UTC),
        session_id="s-1",
        trace="",
        data={},
    )
    inputs = {
        "producer": "llm-gateway@run",
        "sequence": 0,
        "action": "llm.completion",
        "actor": "agent",
        "subject": "model",
        "details": DETAILS[1],
        "prev_hash": audit_module.GENESIS,
        "identity": "llm-gateway",
    }
    data = expected_data(envelope, inputs, KEY)
    assert data["envelope_digest"] == audit_module.envelope_digest(envelope)
    assert data["hash"] == PINNED_HASH
    assert data["signature"] == PINNED_SIGNATURE
    written = envelope.model_copy(update={"data": data})
    assert verify_signature(written, Signer(KEY).public)
    assert audit_module.record_hash(data) == data["hash"]


PINNED_HASH = "33a533713d5e64a709931c2ea8ec647a968e2c601957029cec14aa44d4d7c95b"
PINNED_SIGNATURE = (
    "xevsNQil5PPdphHezQ7IA8I3DkRy4OeYJTCXJHa1Mt2bb6FsIg8TE6sbatTzvPwdMeKWLc-yhGTABtNl68jOBg"
)


async def test_details_changed_after_the_call_do_not_change_the_record() -> None:
    """Records are written behind the call: what was hashed and signed is a copy of the
    details, not the caller's objects (as the pydantic round trip always made it)."""
    publisher = InMemoryPublisher()
    emitter = AuditEmitter(
        publisher, "svc@run", source="svc", identity="svc", signer=Signer(KEY), wait_for_ack=False
    )
    emitter.start()
    details: dict[str, Any] = {"calls": ["a"], "nested": {"n": 1}}
    await emitter.record("x", actor="a", subject="s", details=details)
    details["calls"].append("b")
    details["nested"]["n"] = 2
    details["late"] = True
    await emitter.close()
    [sent] = [Envelope.from_bytes(r.value or b"") for r in publisher.sent if r.topic == AUDIT]
    assert sent.data["details"] == {"calls": ["a"], "nested": {"n": 1}}
    assert verify_signature(sent, Signer(KEY).public)
    assert verify_chain([sent.parse(AuditRecord)]) is None
