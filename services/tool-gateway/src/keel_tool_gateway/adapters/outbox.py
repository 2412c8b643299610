"""The outbox port on Kafka: one event on ``keel.outbox`` per message, keyed by session."""

from __future__ import annotations

from keel_contracts.events import Envelope
from keel_contracts.topics import OUTBOX
from keel_core.bus.producer import Publisher
from keel_tool_gateway.domain.outbox import OutboundMessage

SOURCE = "tool-gateway"


class KafkaOutbox:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def send(self, message: OutboundMessage, *, session_id: str, trace: str = "") -> None:
        """Awaits the broker's acknowledgement. The envelope id is the message id, so a
        duplicate (a call written twice in a rare race) carries the same id."""
        key = session_id or message.message_id
        envelope = Envelope.wrap(message, source=SOURCE, session_id=key, trace=trace)
        envelope = envelope.model_copy(update={"id": message.message_id})
        await self._publisher.publish(OUTBOX, envelope, key=key)
