"""Rebuilding the book at start from the request and decision topics (both kept forever).

Requests first, then decisions: a request whose decision is on the topic comes back decided,
the rest pending with the quorum votes cast so far. Records that cannot be read are skipped
(the live consumer sent bad requests to the DLQ already). Nothing is audited or announced
again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_from_event, vote_from_event
from keel_approval.usecases.intake import RequestReader
from keel_contracts.events import ApprovalDecided, ApprovalVoted, Envelope
from keel_core.bus import PoisonMessage

log = logging.getLogger(__name__)


def rebuild(
    book: ApprovalBook,
    reader: RequestReader,
    requests: Iterable[Envelope],
    decisions: Iterable[Envelope],
) -> tuple[int, int]:
    """Apply every record; returns (requests added, decisions and votes that changed it)."""
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
        try:
            applied += int(apply_record(book, envelope))
        except ValidationError as exc:
            log.warning("rebuild: skipping decision %s: %s", envelope.id, exc)
    return added, applied


def apply_record(book: ApprovalBook, envelope: Envelope) -> bool:
    """One record of the decisions topic applied to the book: a decision settles its request,
    a quorum vote adds its reviewers; anything else is left alone. ``True`` when it changed
    the book. Raises ``ValidationError`` for a payload that does not fit its type."""
    if envelope.type == ApprovalDecided.event_type:
        return book.apply_decision(
            decision_from_event(envelope.parse(ApprovalDecided), envelope.time)
        )
    if envelope.type == ApprovalVoted.event_type:
        return book.apply_vote(vote_from_event(envelope.parse(ApprovalVoted)))
    return False
