"""Deciding: the one path shared by reviewers (gRPC and the web inbox, each having
authenticated its reviewer) and the deadline sweeper, and the one place decisions read back
from the topic are applied. The book checks who may decide (no self-approval) and counts the
quorum; this publishes, records, counts and audits.

A decision is published to ``keel.approval.decisions`` before the book records it, so the
book never shows a decision the agent will not hear of. A quorum vote short of the quorum is
published too, as an ``ApprovalVoted`` on the same topic (the agent loop lets it pass and waits
for the decision), so a restart or another replica keeps it.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_event, vote_event
from keel_approval.domain.models import TIMEOUT_REVIEWER, Approval, Outcome
from keel_approval.errors import ForgedRecord
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.arbiter import Arbiter
from keel_approval.usecases.rebuild import apply_record
from keel_contracts.approvals import SignatureSigner, SignatureVerifier, SignedT, sign_event
from keel_contracts.errors import FailedPrecondition, Unavailable
from keel_contracts.events import ApprovalDecided, Envelope, EventData
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Publisher
from keel_core.periodic import Periodic

SOURCE = "approval"

log = logging.getLogger(__name__)


class Decider:
    def __init__(
        self,
        book: ApprovalBook,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: ApprovalMetrics,
        *,
        signer: SignatureSigner | None = None,
        verifier: SignatureVerifier | None = None,
        decision_valid_s: float = 24 * 3600.0,
    ) -> None:
        """``signer`` signs every decision and vote published, ``verifier`` checks every one
        read back; both None in the insecure dev mode (nothing signed, nothing checked)."""
        self._book = book
        self._publisher = publisher
        self._audit = audit
        self._metrics = metrics
        self._signer = signer
        self.verifier = verifier
        self._decision_valid_s = decision_valid_s
        # One decision at a time: between deciding and recording there is a publish to await,
        # and two reviewers (or a reviewer and the deadline) must not both get one published.
        self._resolving = asyncio.Lock()
        self._arbiter: Arbiter | None = None

    def arbitrate(self, arbiter: Arbiter) -> None:
        """Decide through ``arbiter`` (every replica folds the intents topic, ADR 0014) instead
        of in this process alone: wired when the service follows the approval topics."""
        self._arbiter = arbiter

    async def resolve(
        self,
        approval_id: str,
        outcome: Outcome,
        reviewer: str,
        comment: str = "",
        modified_arguments: object = None,
    ) -> Approval:
        if self._arbiter is not None:
            # Checked here first, so a refusal this replica can see is answered as before.
            self._book.decide(approval_id, outcome, reviewer, comment, modified_arguments)
            modified = modified_arguments if isinstance(modified_arguments, dict) else None
            return await self._arbiter.submit(
                approval_id, outcome, reviewer.strip(), comment, modified
            )
        async with self._resolving:
            decided = self._book.decide(approval_id, outcome, reviewer, comment, modified_arguments)
            if decided.pending:  # a quorum vote: the agent waits for the decision
                await self._publish(decided, self._signed(vote_event(decided, comment)))
            else:
                event = self._signed(decision_event(decided, valid_s=self._decision_valid_s))
                decided = decided.model_copy(update={"decision_json": event.model_dump_json()})
                await self._publish(decided, event)
            self._book.record(decided)
        await self.account(decided, reviewer)
        return decided

    async def apply_published(self, envelope: Envelope) -> bool:
        """A record followed on the decisions topic (ours read back, or another replica's):
        applied under the same lock as our own decisions, so it never lands between one of
        ours being published and recorded. ``True`` when it changed the book. A record that
        does not fit its type is skipped with one line (the live consumer of the same topic
        never sees it: this follower is the only reader), not a stack trace per record.
        A record the approval service did not sign, or that breaks its request's rules, is
        refused and audited as ``security.denied`` (the follower cannot dead-letter a record
        it follows; the next start's rebuild dead-letters it)."""
        async with self._resolving:
            try:
                applied = apply_record(self._book, envelope, verifier=self.verifier)
            except ValidationError as exc:
                log.warning(
                    "skipping malformed %s %s: %d problem(s)",
                    envelope.type,
                    envelope.id,
                    exc.error_count(),
                )
                return False
            except ForgedRecord as exc:
                await self.denied(envelope, str(exc))
                return False
        if self._arbiter is not None and envelope.type == ApprovalDecided.event_type:
            self._arbiter.published(str(envelope.data.get("approval_id", "")))
        return applied

    async def denied(self, envelope: Envelope, reason: str) -> None:
        """Audit a refused record of the decisions topic."""
        log.warning("refused %s %s: %s", envelope.type, envelope.id, reason)
        await self._audit.record(
            "security.denied",
            actor=envelope.source or "unknown",
            subject=str(envelope.data.get("approval_id", envelope.id)),
            session_id=envelope.session_id,
            details={"reason": reason, "topic": APPROVAL_DECISIONS, "event": envelope.id},
        )

    def prune(self) -> int:
        """Forget decided requests past their retention (see ``Retention``)."""
        return self._book.prune()

    async def expire_due(self) -> list[Approval]:
        """Time out every pending request past its deadline; returns those timed out. A request
        decided meanwhile is skipped; a failed publish leaves it pending for the next sweep.
        Under an arbiter this publishes time-out intents (and decisions left unpublished)."""
        if self._arbiter is not None:
            return await self._arbiter.sweep()
        done: list[Approval] = []
        for approval in self._book.expired():
            try:
                done.append(
                    await self.resolve(
                        approval.id, "time_out", TIMEOUT_REVIEWER, "no decision before the deadline"
                    )
                )
            except FailedPrecondition:
                continue
            except Unavailable as exc:
                log.warning("time-out of %s not published, retrying later: %s", approval.id, exc)
                break
        return done

    def _signed(self, event: SignedT) -> SignedT:
        if self._signer is None:
            return event
        return sign_event(event, self._signer)

    async def _publish(self, decided: Approval, event: EventData) -> None:
        envelope = Envelope.wrap(
            event, source=SOURCE, session_id=decided.session_id, trace=decided.trace
        )
        try:
            await self._publisher.publish(APPROVAL_DECISIONS, envelope, key=decided.session_id)
        except Exception as exc:
            raise Unavailable(f"decision not published, try again: {exc}") from exc

    async def account(self, decided: Approval, reviewer: str) -> None:
        """Count and audit what one reviewer's action did (on the replica that took it)."""
        if decided.pending:
            await self._audit.record(
                "approval.voted",
                actor=reviewer,
                subject=decided.id,
                session_id=decided.session_id,
                details={
                    "reviewer": reviewer,
                    "tool": decided.tool_name,
                    "approvals": list(decided.approved_by),
                    "required": decided.required_approvals,
                },
            )
            return
        self._metrics.decided.labels(decided.status).inc()
        if decided.decided_at is not None:
            waited = (decided.decided_at - decided.created_at).total_seconds()
            self._metrics.time_to_decision.labels(decided.status).observe(max(waited, 0.0))
        await self._audit.record(
            "approval.decided",
            actor=decided.decided_by,
            subject=decided.id,
            session_id=decided.session_id,
            details={
                "reviewer": decided.decided_by,
                "outcome": decided.status,
                "tool": decided.tool_name,
                "comment": decided.comment,
                "modified_arguments": decided.modified_arguments,
            },
        )


class DeadlineSweeper:
    """Every ``interval_s`` (the first time at start): time out overdue requests and forget
    decided ones past their retention."""

    def __init__(self, decider: Decider, interval_s: float) -> None:
        self._decider = decider
        self._periodic = Periodic("approval-deadlines", interval_s, self.sweep, at_start=True)
        self.start = self._periodic.start
        self.stop = self._periodic.stop

    async def sweep(self) -> None:
        for approval in await self._decider.expire_due():
            log.info("approval %s timed out", approval.id)
        forgotten = self._decider.prune()
        if forgotten:
            log.info("forgot %d decided approvals past retention", forgotten)
