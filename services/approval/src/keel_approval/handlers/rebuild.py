"""Rebuilding the book at start from the request and decision topics (both kept forever).

Requests first, then decisions: a request whose decision is on the topic comes back decided,
the rest pending. Records that cannot be read are skipped (the live consumer sent bad
requests to the DLQ already). Nothing is audited or announced again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.kafka_handler import RequestReader
from keel_approval.handlers.mapping import decision_from_event
from keel_core.bus import PoisonMessage
from keel_core.events import ApprovalDecided, Envelope

log = logging.getLogger(__name__)


def rebuild(
    book: ApprovalBook,
    reader: RequestReader,
    requests: Iterable[Envelope],
    decisions: Iterable[Envelope],
) -> tuple[int, int]:
    """Apply every record; returns (requests added, decisions applied)."""
    added = 0
    for envelope in requests:
        try:
            _, new = book.add_request(reader.read(envelope))
        except PoisonMessage as exc:
            log.warning("rebuild: skipping request %s: %s", envelope.id, exc)
            continue
        added += int(new)
    applied = 0
    for envelope in decisions:
        if envelope.type != ApprovalDecided.event_type:
            continue
        try:
            decision = decision_from_event(envelope.parse(ApprovalDecided), envelope.time)
        except ValidationError as exc:
            log.warning("rebuild: skipping decision %s: %s", envelope.id, exc)
            continue
        applied += int(book.apply_decision(decision))
    return added, applied
