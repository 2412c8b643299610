"""Rebuilding the book at start from the request and decision topics (both kept forever).

Requests first, then decisions: a request whose decision is on the topic comes back decided,
the rest pending with the quorum votes cast so far. A record that cannot be used (a poison
request the live consumer dead-lettered, an invalid decision) is skipped and handed back with
its reason, never raised: both topics are kept forever, so one bad record would otherwise stop
every start. Nothing is audited or announced again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_from_event, vote_from_event
from keel_approval.errors import ForgedRecord
from keel_approval.usecases.intake import RequestReader
from keel_contracts.approvals import SignatureVerifier, signature_problem
from keel_contracts.errors import PermissionDenied
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
    verifier: SignatureVerifier | None = None,
) -> tuple[int, int]:
    """Apply every record; returns (requests added, decisions and votes that changed it).
    A record that cannot be applied is skipped (and appended to ``rejected``, when given);
    with a ``verifier``, so is every decision or vote the approval service did not sign."""
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
            applied += int(apply_record(book, envelope, verifier=verifier))
        except PermissionDenied as exc:
            _skip(skipped, APPROVAL_DECISIONS, envelope, "refused decision", exc)
        except Exception as exc:  # noqa: BLE001 - as above
            _skip(skipped, APPROVAL_DECISIONS, envelope, "invalid decision", exc)
    return added, applied


def _skip(
    skipped: list[Rejected], topic: str, envelope: Envelope, what: str, exc: Exception
) -> None:
    reason = f"rebuild: {what}: {str(exc).replace(chr(10), ' ')[:500]}"
    log.warning("rebuild: skipping %s from %s: %s", envelope.id, topic, reason)
    skipped.append(Rejected(topic, envelope, reason, exc))


def apply_record(
    book: ApprovalBook,
    envelope: Envelope,
    *,
    verifier: SignatureVerifier | None = None,
) -> bool:
    """One record of the decisions topic applied to the book: a decision settles its request,
    a quorum vote adds its reviewers; anything else is left alone. ``True`` when it changed
    the book. Raises ``ValidationError`` for a payload that does not fit its type, and
    ``ForgedRecord`` for one that is unsigned or badly signed (with a ``verifier``; None is the
    insecure dev mode) or that breaks its request's rules. Expiry is not checked: a decision
    past it is still what was decided (the book's history), it only may not be acted on."""
    if envelope.type == ApprovalDecided.event_type:
        decided = envelope.parse(ApprovalDecided)
        _verify(decided, verifier)
        decision = decision_from_event(decided, envelope.time)
        if verifier is None:  # insecure dev mode: applied as published, as before signing
            decision = decision.model_copy(update={"event": None})
        return _checked(lambda: book.apply_decision(decision))
    if envelope.type == ApprovalVoted.event_type:
        voted = envelope.parse(ApprovalVoted)
        _verify(voted, verifier)
        vote = vote_from_event(voted)
        return _checked(lambda: book.apply_vote(vote, check=verifier is not None))
    return False


def _verify(event: ApprovalDecided | ApprovalVoted, verifier: SignatureVerifier | None) -> None:
    if verifier is None:
        return
    problem = signature_problem(event, verifier)
    if problem is not None:
        raise ForgedRecord(f"{problem} for approval {event.approval_id!r}")


def _checked(apply: Callable[[], bool]) -> bool:
    try:
        return apply()
    except ForgedRecord:
        raise
    except PermissionDenied as exc:
        raise ForgedRecord(str(exc)) from exc
