"""Messages that leave Keel. A tool does not talk to a mail server: it writes the message to
the outbox topic, and a sender outside the gateway delivers it. The message id is derived from
the idempotency key, so a sender can drop a duplicate even in the rare case a call is written
twice."""

from __future__ import annotations

from typing import ClassVar

from keel_contracts.events import EventData


class OutboundMessage(EventData):
    event_type: ClassVar[str] = "keel.outbox.email"

    message_id: str
    to: str
    subject: str
    body: str
    idempotency_key: str = ""
    approval_id: str = ""
