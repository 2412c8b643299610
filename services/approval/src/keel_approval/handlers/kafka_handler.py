"""Consumes ``keel.approval.requests``: each request joins the book once and is audited once."""

from __future__ import annotations

from pydantic import ValidationError

from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.mapping import approval_from_event
from keel_approval.metrics import ApprovalMetrics
from keel_core.audit import AuditEmitter
from keel_core.bus import PoisonMessage
from keel_core.events import ApprovalRequested, Envelope


class RequestHandler:
    def __init__(self, book: ApprovalBook, audit: AuditEmitter, metrics: ApprovalMetrics) -> None:
        self._book = book
        self._audit = audit
        self._metrics = metrics

    async def on_request(self, envelope: Envelope) -> None:
        """Idempotent: a redelivered request is a no-op, even after it was decided."""
        if envelope.type != ApprovalRequested.event_type:
            raise PoisonMessage(
                f"expected {ApprovalRequested.event_type!r} on the request topic, "
                f"got {envelope.type!r}"
            )
        try:
            event = envelope.parse(ApprovalRequested)
        except ValidationError as exc:
            raise PoisonMessage(f"invalid approval request: {exc}") from exc
        approval, added = self._book.add_request(
            approval_from_event(event, envelope.session_id, envelope.time)
        )
        if not added:
            return
        self._metrics.requested.inc()
        await self._audit.record(
            "approval.requested",
            actor=approval.agent_id,
            subject=approval.id,
            session_id=approval.session_id,
            trace=envelope.trace,
            details={
                "tool": approval.tool_name,
                "idempotency_key": approval.idempotency_key,
                "arguments": approval.arguments,
            },
        )
