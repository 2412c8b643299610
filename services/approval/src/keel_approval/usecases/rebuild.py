"""Rebuilding the book at start from the request and decision topics (both kept forever).

Requests first, then decisions: a request whose decision is on the topic comes back decided,
the rest pending with the quorum votes cast so far. A record that cannot be used (a poison
request the live consumer dead-lettered, an invalid decision) is skipped and handed back with
its reason, never raised: both topics are kept forever, so one bad record would otherwise stop
every start. Nothing is audited or announced again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_from_event, vote_from_event
from keel_approval.usecases.intake import RequestReader
from keel_contracts.events import ApprovalDecided, ApprovalVoted, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    """A record the rebuild skipped, and why (for the DLQ)."""

    topic: str
    envelope: Envelope
    reason: str
    error: Exception


def rebuild(
    book: ApprovalBook,
    reader: RequestReader,
    requests: Iterable[Envelope],
    decisions: Iterable[Envelope],
    *,
    rejected: list[Rejected] | None = None,
) -> tuple[int, int]:
    """Apply every record; returns (requests added, decisions and votes that changed it).
    A record that cannot be applied is skipped (and appended to ``rejected``, when given)."""
    skipped = rejected if rejected is not None else []
    added = 0
    for envelope in requests:
        try:
            _, new = book.add_request(reader.read(envelope))
        except Exception as exc:  # noqa: BLE001 - a bad record must never stop the start
            _skip(skipped, APPROVAL_REQUESTS, envelope, "invalid approval request", exc)
            continue
        added += int(new)
    applied = 0
    for envelope in decisions:
        try:
            applied += int(apply_record(book, envelope))
        except Exception as exc:  # noqa: BLE001 - as above
            _skip(skipped, APPROVAL_DECISIONS, envelope, "invalid decision", exc)
    return added, applied


def _skip(
    skipped: list[Rejected], topic: str, envelope: Envelope, what: str, exc: Exception
) -> None:
    reason = f"rebuild: {what}: {str(exc).replace(chr(10), ' ')[:500]}"
    log.warning("rebuild: skipping %s from %s: %s", envelope.id, topic, reason)
    skipped.append(Rejected(topic, envelope, reason, exc))


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
