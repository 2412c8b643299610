"""What the domain needs from the outside, as protocols: adapters and fakes implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from keel_tool_gateway.domain.ledger import LedgerEntry, StartedEntry
from keel_tool_gateway.domain.models import (
    ApprovalView,
    MemoryHit,
    MemoryType,
    PolicyVerdict,
    RequestContext,
)
from keel_tool_gateway.domain.outbox import OutboundMessage
from keel_tool_gateway.domain.provenance import Finding
from keel_tool_gateway.domain.resilience.spec import ToolResilience

T = TypeVar("T")


class PolicyPort(Protocol):
    async def evaluate(
        self,
        ctx: RequestContext,
        tool: str,
        arguments: dict[str, Any],
        *,
        idempotency_key: str = "",
        provenance: Sequence[Finding] = (),
        approved: bool = False,
    ) -> PolicyVerdict:
        """The policy's verdict on one call. Raises when no verdict can be had: the caller
        then fails closed. ``idempotency_key`` lets running totals count a call once however
        often it is decided; ``provenance`` holds the spans of the arguments found in tool
        output the session read; ``approved`` says a person's approval of this very call was
        verified (so a REQUIRE_APPROVAL verdict lets it run, and running totals count it)."""
        ...


class LedgerPort(Protocol):
    """Finished calls by idempotency key."""

    def get(self, key: str) -> LedgerEntry | None:
        """The stored entry, as seen by this process (a durable ledger follows other writers
        with a short lag)."""
        ...

    def started(self, key: str) -> StartedEntry | None:
        """The intent of an ``at_most_once`` call of this key with no result yet."""
        ...

    async def begin(
        self, key: str, entry: StartedEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Store the intent; returns only once it is durable. Raises when it could not be
        stored: the call must then not run."""
        ...

    async def abandon(self, key: str) -> None:
        """Remove the key's intent: the call did not run after all (its breaker was open).
        Raises when it could not be removed (the intent then ages into an unknown outcome)."""
        ...

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Store the entry (it replaces the key's intent); returns only once it is durable.
        Raises when it could not be stored: the caller must then withhold the result."""
        ...


class ApprovalPort(Protocol):
    async def get(self, approval_id: str) -> ApprovalView | None:
        """The approval as the approval service has it; None when it does not know the id.
        Raises when the service cannot answer: the caller then fails closed."""
        ...


class OutboxPort(Protocol):
    async def send(self, message: OutboundMessage, *, session_id: str, trace: str = "") -> None:
        """Hand a message to the outbox; returns once it is durably queued."""
        ...


class ResiliencePort(Protocol):
    """Runs one allowed, validated call: attempts, waits and breakers, all within the tool's
    time-out, by the rules of ``domain.resilience.rules``."""

    async def call(
        self,
        tool: str,
        spec: ToolResilience,
        run: Callable[[], Awaitable[T]],
        timeout_s: float,
    ) -> T:
        """``run()``'s value. Raises ``CircuitOpen`` when a breaker refused before anything
        ran, else ``CallFailed`` with the last attempt's error."""
        ...


class MemoryPort(Protocol):
    """The memory service, as the memory tools use it."""

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        *,
        kind: MemoryType,
        metadata: dict[str, str],
    ) -> str:
        """Store one entry; returns its id (a content hash: storing twice gives one id)."""
        ...

    async def search(
        self,
        ctx: RequestContext,
        query: str,
        *,
        kinds: list[MemoryType],
        top_k: int,
        token_budget: int,
    ) -> list[MemoryHit]: ...
