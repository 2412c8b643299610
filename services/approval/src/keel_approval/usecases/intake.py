"""Request intake: each request on ``keel.approval.requests`` joins the book once, is counted
and audited once and (optionally) announced once on the webhook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import approval_from_event
from keel_approval.domain.models import Approval
from keel_approval.metrics import ApprovalMetrics
from keel_contracts.events import ApprovalRequested, Envelope
from keel_core.audit import AuditEmitter
from keel_core.bus import PoisonMessage

Notify = Callable[[Approval], None]
Added = Callable[[str], Awaitable[None]]
# Requests followed but not yet announced by the consumer that owns their partition.
_QUIET_MAX = 100_000


class RequestReader:
    """Envelope → pending ``Approval``, with the time-out and quorum fixed on arrival. Shared
    by the live consumer and the start-up rebuild, so both read a request the same way; a
    record that can never be read is a ``PoisonMessage`` (the consumer dead-letters it, the
    rebuild skips it)."""

    def __init__(
        self, *, default_timeout_s: float = 3600.0, quorum: Mapping[str, int] | None = None
    ) -> None:
        self._default_timeout_s = default_timeout_s
        self._quorum = dict(quorum or {})

    def read(self, envelope: Envelope) -> Approval:
        if envelope.type != ApprovalRequested.event_type:
            raise PoisonMessage(
                f"expected {ApprovalRequested.event_type!r} on the request topic, "
                f"got {envelope.type!r}"
            )
        try:
            event = envelope.parse(ApprovalRequested)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid approval request: {exc}") from exc
        return approval_from_event(
            event,
            envelope.session_id,
            envelope.time,
            default_timeout_s=self._default_timeout_s,
            quorum=self._quorum,
            trace=envelope.trace,
        )


class RequestIntake:
    def __init__(
        self,
        book: ApprovalBook,
        audit: AuditEmitter,
        metrics: ApprovalMetrics,
        *,
        notify: Notify | None = None,
        added: Added | None = None,
    ) -> None:
        """``added`` is told the id of every request new to the book (the arbiter folds the
        intents that arrived before it)."""
        self._book = book
        self._audit = audit
        self._metrics = metrics
        self._notify = notify
        self._added = added
        self._quiet: dict[str, None] = {}

    async def observe(self, request: Approval) -> Approval:
        """A request followed on the topic (every partition, ADR 0014): it joins this
        replica's book at once, and is counted, audited and announced only by the replica whose
        consumer owns its partition (``receive``), so once."""
        approval, added = self._book.add_request(request)
        if added:
            self._quiet[approval.id] = None
            while len(self._quiet) > _QUIET_MAX:
                del self._quiet[next(iter(self._quiet))]
            await self._joined(approval)
        return approval

    async def receive(self, request: Approval) -> Approval:
        """Idempotent: a redelivered request is a no-op, even after it was decided, and so is
        one the start-up rebuild has already put in the book. Returns the book's copy. One the
        follower put in the book first (``observe``) is announced here, once."""
        approval, added = self._book.add_request(request)
        followed = approval.id in self._quiet
        self._quiet.pop(approval.id, None)
        if added:
            await self._joined(approval)
        elif not followed:
            return approval
        self._metrics.requested.inc()
        if self._notify is not None and approval.pending:
            self._notify(approval)
        await self._audit.record(
            "approval.requested",
            actor=approval.agent_id,
            subject=approval.id,
            session_id=approval.session_id,
            trace=request.trace,
            details={
                "tool": approval.tool_name,
                "idempotency_key": approval.idempotency_key,
                "arguments": approval.arguments,
            },
        )
        return approval

    async def _joined(self, approval: Approval) -> None:
        if self._added is not None:
            await self._added(approval.id)
