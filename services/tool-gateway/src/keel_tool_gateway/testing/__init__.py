"""Test doubles for code built on the tool gateway: a scripted policy, approvals, outbox and
ledger, a counting tool, a sleep stepped by hand (the ledger's background retries), and
(``testing.resilience``) a fake clock, a flaky dependency and a recording observer for retries
and breakers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.ledger import LedgerEntry, ResultLedger
from keel_tool_gateway.domain.models import (
    ApprovalView,
    Decision,
    PolicyVerdict,
    RequestContext,
)
from keel_tool_gateway.domain.outbox import OutboundMessage
from keel_tool_gateway.domain.provenance import Finding
from keel_tool_gateway.domain.registry import Effects, Tool
from keel_tool_gateway.testing.ledger import SteppedSleep
from keel_tool_gateway.testing.resilience import (
    FakeTime,
    FlakyDependency,
    FlakyInput,
    RecordingObserver,
    ResilientTool,
)

__all__ = [
    "CountingInput",
    "CountingTool",
    "FakeTime",
    "FlakyDependency",
    "FlakyInput",
    "FlakyLedger",
    "PolicyCall",
    "RecordingObserver",
    "RecordingOutbox",
    "ResilientTool",
    "SentMessage",
    "StaticApprovals",
    "StaticPolicy",
    "SteppedSleep",
]


@dataclass
class PolicyCall:
    ctx: RequestContext
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str = ""
    # What the gateway found about where the arguments' text came from.
    provenance: tuple[Finding, ...] = ()
    approved: bool = False


class StaticPolicy:
    """A policy port with fixed answers: ``default`` for every tool, ``per_tool`` overriding it.

    With ``error`` set every evaluation raises it (a policy service that is down). ``calls``
    records each evaluation.
    """

    def __init__(
        self,
        default: Decision | PolicyVerdict = "allow",
        per_tool: dict[str, Decision | PolicyVerdict] | None = None,
        error: Exception | None = None,
    ) -> None:
        self._default = _verdict(default)
        self._per_tool = {name: _verdict(v) for name, v in (per_tool or {}).items()}
        self.error = error
        self.calls: list[PolicyCall] = []

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
        self.calls.append(
            PolicyCall(ctx, tool, arguments, idempotency_key, tuple(provenance), approved)
        )
        if self.error is not None:
            raise self.error
        return self._per_tool.get(tool, self._default)


def _verdict(value: Decision | PolicyVerdict) -> PolicyVerdict:
    if isinstance(value, PolicyVerdict):
        return value
    return PolicyVerdict(decision=value, rule_id=f"static-{value}", reason=f"static {value}")


class CountingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=0, ge=0, le=100)


@dataclass
class CountingTool:
    """A tool that counts its runs; it can sleep first, fail, or return a chosen value.

    Use ``.tool`` with a registry and assert on ``.runs``.
    """

    name: str = "counter"
    result: Any = "counted"
    sleep_s: float = 0.0
    error: Exception | None = None
    timeout_s: float | None = None
    effects: Effects = "at_most_once"
    runs: int = 0
    seen: list[CountingInput] = field(default_factory=list)

    @property
    def tool(self) -> Tool[CountingInput]:
        return Tool(
            name=self.name,
            description="Counts its runs (tests only).",
            input_model=CountingInput,
            run=self._run,
            timeout_s=self.timeout_s,
            effects=self.effects,
        )

    async def _run(self, args: CountingInput) -> Any:
        self.runs += 1
        self.seen.append(args)
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)
        if self.error is not None:
            raise self.error
        return self.result


class StaticApprovals:
    """An approval port over a dict; ``error`` set: the approval service is down."""

    def __init__(
        self, approvals: list[ApprovalView] | None = None, error: Exception | None = None
    ) -> None:
        self.approvals = {a.id: a for a in approvals or []}
        self.error = error
        self.asked: list[str] = []

    async def get(self, approval_id: str) -> ApprovalView | None:
        self.asked.append(approval_id)
        if self.error is not None:
            raise self.error
        return self.approvals.get(approval_id)


@dataclass
class SentMessage:
    message: OutboundMessage
    session_id: str
    trace: str


@dataclass
class RecordingOutbox:
    """Keeps what was sent; ``error`` set: the outbox refuses."""

    sent: list[SentMessage] = field(default_factory=list)
    error: Exception | None = None

    async def send(self, message: OutboundMessage, *, session_id: str, trace: str = "") -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(SentMessage(message, session_id, trace))


class FlakyLedger(ResultLedger):
    """The in-memory ledger whose writes fail while ``error`` is set (a broker that is down)."""

    def __init__(self, capacity: int = 10_000, error: Exception | None = None) -> None:
        super().__init__(capacity)
        self.error = error
        self.writes = 0

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        self.writes += 1
        if self.error is not None:
            raise self.error
        await super().put(key, entry, session_id=session_id, trace=trace)
