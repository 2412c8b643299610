"""Read a topic's envelopes as they stand now, to rebuild the book at start."""

from __future__ import annotations

import logging

from keel_contracts.events import Envelope
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)


async def read_to_end(settings: KafkaSettings, topic: str, client_id: str) -> list[Envelope]:
    """Every decodable envelope on ``topic`` now, in order within each partition."""
    out: list[Envelope] = []
    for record in await read_topic(settings, topic, client_id):
        if record.value is None:
            continue
        try:
            out.append(Envelope.from_bytes(record.value))
        except ValueError as exc:
            log.warning("skipping undecodable record %s@%d: %s", topic, record.offset, exc)
    return out
