"""What the domain needs from the outside, as protocols: adapters and fakes implement them."""

from __future__ import annotations

from typing import Any, Protocol

from keel_tool_gateway.domain.ledger import LedgerEntry
from keel_tool_gateway.domain.models import ApprovalRecord, PolicyVerdict, RequestContext
from keel_tool_gateway.domain.outbox import OutboundMessage


class PolicyPort(Protocol):
    async def evaluate(
        self, ctx: RequestContext, tool: str, arguments: dict[str, Any]
    ) -> PolicyVerdict:
        """The policy's verdict on one call. Raises when no verdict can be had: the caller
        then fails closed."""
        ...


class LedgerPort(Protocol):
    """Finished calls by idempotency key."""

    def get(self, key: str) -> LedgerEntry | None:
        """The stored entry, as seen by this process (a durable ledger follows other writers
        with a short lag)."""
        ...

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Store the entry; returns only once it is durable. Raises when it could not be
        stored: the caller must then withhold the result."""
        ...


class ApprovalPort(Protocol):
    async def get(self, approval_id: str) -> ApprovalRecord | None:
        """The approval as the approval service has it; None when it does not know the id.
        Raises when the service cannot answer: the caller then fails closed."""
        ...


class OutboxPort(Protocol):
    async def send(self, message: OutboundMessage, *, session_id: str, trace: str = "") -> None:
        """Hand a message to the outbox; returns once it is durably queued."""
        ...
