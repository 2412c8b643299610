"""One decision per approval, whichever replicas reviewers use (ADR 0014).

A reviewer's action is not decided where it is taken: it is published, signed, as an
``ApprovalIntended`` on ``keel.approval.intents`` and decided by the fold
(``domain.fold``) that every replica runs over that topic in log order. The replica whose own
intent completed the fold publishes the ``ApprovalDecided`` at once; the others record the same
decision in their books and publish it only if it has not been read back on the decisions topic
``grace_s`` later (its writer died between its intent and its decision). The decision's content,
time, envelope id and Ed25519 signature are functions of the log, so a late second copy is
byte-identical and readers that take the first decision per approval id are not misled.

A reviewer is answered once this replica has folded up to their own record: the decision, the
vote counted, or ``FailedPrecondition`` when another intent got there first.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_event, intent_event, intent_from_event
from keel_approval.domain.fold import Folded, fold
from keel_approval.domain.models import TIMEOUT_REVIEWER, Approval, Outcome
from keel_contracts.approvals import (
    SignatureSigner,
    SignatureVerifier,
    SignedT,
    sign_event,
    signature_problem,
)
from keel_contracts.errors import FailedPrecondition, NotFound, Unavailable
from keel_contracts.events import ApprovalDecided, ApprovalIntended, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_INTENTS
from keel_core.bus.producer import Publisher

SOURCE = "approval"
# Decision envelope ids derive from the approval id, so every writer's copy is the same record.
_DECISION_IDS = uuid.UUID("8f0d2a4e-4b7c-5c1e-9a51-0c7e1d0a5e14")
_KEPT_MAX = 10_000

log = logging.getLogger(__name__)

Account = Callable[[Approval, str], Awaitable[None]]
Denied = Callable[[Envelope, str], Awaitable[None]]


class Arbiter:
    def __init__(
        self,
        book: ApprovalBook,
        publisher: Publisher,
        *,
        account: Account,
        denied: Denied,
        signer: SignatureSigner | None = None,
        verifier: SignatureVerifier | None = None,
        decision_valid_s: float = 24 * 3600.0,
        grace_s: float = 3.0,
        wait_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``account`` audits and counts what this replica's own intents did (once across
        replicas); ``denied`` audits a refused record; ``grace_s`` is how long a decision
        another replica's intent completed may stay unpublished before this one publishes it;
        ``wait_s`` bounds how long a reviewer waits for their intent to be read back."""
        self._book = book
        self._publisher = publisher
        self._account = account
        self._denied = denied
        self._signer = signer
        self._verifier = verifier
        self._valid_s = decision_valid_s
        self._grace_s = grace_s
        self._wait_s = wait_s
        self._clock = clock
        self._mine: dict[str, None] = {}
        self._waiting: dict[str, asyncio.Future[Folded]] = {}
        self._early: dict[str, list[Envelope]] = {}
        self._unpublished: dict[str, tuple[Approval, ApprovalDecided, float]] = {}
        self._timed_out: set[str] = set()

    async def submit(
        self,
        approval_id: str,
        outcome: Outcome,
        reviewer: str,
        comment: str = "",
        modified_arguments: dict[str, Any] | None = None,
    ) -> Approval:
        """Publish the action and answer with what the fold made of it."""
        current = self._book.get(approval_id)
        envelope = self._intent(current, outcome, reviewer, comment, modified_arguments)
        future: asyncio.Future[Folded] = asyncio.get_running_loop().create_future()
        self._waiting[envelope.id] = future
        try:
            await self._publish(APPROVAL_INTENTS, envelope)
            folded = await asyncio.wait_for(future, self._wait_s)
        except TimeoutError:
            raise Unavailable(
                f"the action on {approval_id!r} was published but not read back yet; "
                "look at the approval before trying again"
            ) from None
        finally:
            self._waiting.pop(envelope.id, None)
        if not folded.counted:
            raise FailedPrecondition(folded.reason)
        return folded.approval

    async def apply(self, envelope: Envelope) -> bool:
        """One record of the intents topic (live or at start); ``True`` when it changed the
        book. An intent for a request not seen yet waits for it (``request_added``)."""
        if envelope.type != ApprovalIntended.event_type:
            return False
        try:
            event = envelope.parse(ApprovalIntended)
        except ValidationError as exc:
            log.warning(
                "skipping malformed intent %s: %d problem(s)", envelope.id, exc.error_count()
            )
            return False
        problem = self._signature_problem(event)
        if problem is not None:
            await self._denied(envelope, f"{problem} for approval {event.approval_id!r}")
            return False
        try:
            current = self._book.get(event.approval_id)
        except NotFound:
            self._early.setdefault(event.approval_id, []).append(envelope)
            _trim(self._early)
            return False
        return await self._fold(current, envelope, event)

    async def request_added(self, approval_id: str) -> None:
        """Fold the intents that arrived before their request."""
        for envelope in self._early.pop(approval_id, []):
            await self.apply(envelope)

    def published(self, approval_id: str) -> None:
        """An ``ApprovalDecided`` for ``approval_id`` was read back: nothing left to publish."""
        self._unpublished.pop(approval_id, None)

    async def sweep(self) -> list[Approval]:
        """Publish decisions whose writer has not within the grace, then a time-out intent for
        every overdue request (once per replica; the fold keeps only the first). Returns the
        requests a time-out was asked for."""
        now = self._clock()
        for approval_id, (approval, event, since) in list(self._unpublished.items()):
            if now - since < self._grace_s:
                continue
            try:
                await self._publish(APPROVAL_DECISIONS, _decision_envelope(approval, event))
            except Unavailable as exc:
                log.warning("decision of %s not published, retrying later: %s", approval_id, exc)
                break
            log.info("published the decision of %s for the replica that made it", approval_id)
            self._unpublished.pop(approval_id, None)
        due = self._book.expired()
        asked: list[Approval] = []
        for approval in due:
            if approval.id in self._timed_out:
                continue
            envelope = self._intent(
                approval, "time_out", TIMEOUT_REVIEWER, "no decision before the deadline"
            )
            try:
                await self._publish(APPROVAL_INTENTS, envelope)
            except Unavailable as exc:
                log.warning("time-out of %s not published, retrying later: %s", approval.id, exc)
                break
            self._timed_out.add(approval.id)
            asked.append(approval)
        self._timed_out &= {a.id for a in due}
        return asked

    async def _fold(self, current: Approval, envelope: Envelope, event: ApprovalIntended) -> bool:
        folded = fold(current, intent_from_event(event, envelope.time, envelope.id))
        mine = envelope.id in self._mine
        self._mine.pop(envelope.id, None)
        signed: ApprovalDecided | None = None
        if folded.decided:
            signed = self._signed(decision_event(folded.approval, valid_s=self._valid_s))
            approval = folded.approval.model_copy(
                update={"decision_json": signed.model_dump_json()}
            )
            folded = folded.model_copy(update={"approval": approval})
            if not mine:
                # Another replica's to write: published by a sweep unless read back in time.
                self._unpublished[approval.id] = (approval, signed, self._clock())
        if folded.counted:
            # In the same step as the fold, nothing awaited between: a decision read back
            # meanwhile cannot make the book and the fold disagree.
            self._book.record(folded.approval)
        if mine and signed is not None:
            # Ours to write, now: never queued for a sweep while the write is in flight (a
            # slow acknowledgement would have the sweep write a second copy); a failed write is.
            await self._publish_own(folded.approval, signed)
        if mine and folded.counted:
            await self._account(folded.approval, event.reviewer)
        waiter = self._waiting.get(envelope.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(folded)
        return folded.counted

    async def _publish_own(self, approval: Approval, signed: ApprovalDecided) -> None:
        try:
            await self._publish(APPROVAL_DECISIONS, _decision_envelope(approval, signed))
        except Unavailable as exc:
            log.warning("decision of %s not published, retrying: %s", approval.id, exc)
            self._unpublished[approval.id] = (approval, signed, self._clock())

    def _intent(
        self,
        approval: Approval,
        outcome: Outcome,
        reviewer: str,
        comment: str,
        modified_arguments: dict[str, Any] | None = None,
    ) -> Envelope:
        event = self._signed(intent_event(approval, outcome, reviewer, comment, modified_arguments))
        envelope = Envelope.wrap(
            event, source=SOURCE, session_id=approval.session_id, trace=approval.trace
        )
        self._mine[envelope.id] = None
        _trim(self._mine)
        return envelope

    def _signature_problem(self, event: ApprovalIntended) -> str | None:
        return None if self._verifier is None else signature_problem(event, self._verifier)

    def _signed(self, event: SignedT) -> SignedT:
        return event if self._signer is None else sign_event(event, self._signer)

    async def _publish(self, topic: str, envelope: Envelope) -> None:
        try:
            await self._publisher.publish(topic, envelope, key=envelope.session_id)
        except Exception as exc:
            raise Unavailable(f"not published, try again: {exc}") from exc


def _decision_envelope(approval: Approval, event: ApprovalDecided) -> Envelope:
    """The same record whoever writes it: id from the approval, time from the decision."""
    return Envelope(
        id=uuid.uuid5(_DECISION_IDS, approval.id).hex,
        type=event.event_type,
        source=SOURCE,
        time=approval.decided_at or approval.created_at,
        session_id=approval.session_id,
        trace=approval.trace,
        data=event.model_dump(mode="json"),
    )


def _trim(kept: dict[str, Any]) -> None:
    while len(kept) > _KEPT_MAX:
        del kept[next(iter(kept))]
